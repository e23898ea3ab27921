"""voxline: self-hosted voice agents on Pipecat pipelines."""

from voxline.errors import VoxlineError

__all__ = ["VoxlineError"]
__version__ = "0.1.0"
