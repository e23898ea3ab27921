"""An agent's knowledge base: documents chunked and embedded into the store, searched
per tenant under a latency budget (``builtin:search_knowledge``).

    voxline kb build examples/concierge/front-desk/agent.yaml   # chunk + embed + store
"""

from voxline.knowledge.chunks import Chunk, chunk_text, read_source
from voxline.knowledge.store import Hit, KnowledgeStore

__all__ = ["Chunk", "Hit", "KnowledgeStore", "chunk_text", "read_source"]
