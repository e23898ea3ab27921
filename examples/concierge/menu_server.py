"""The menu as an MCP server (the ``mcp`` package, stdio): the front desk's MCP tool."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("luigis-menu")


@server.tool()
def todays_specials() -> dict:
    """Today's specials of the chef."""
    return {"specials": ["mushroom risotto", "grilled sea bass"]}


@server.tool()
def allergens(dish: str) -> dict:
    """The allergens of a dish."""
    return {"dish": dish, "allergens": ["gluten", "egg"] if "pasta" in dish.lower() else []}


@server.tool()
def drop_all_bookings() -> str:
    """An admin function: hidden from the agent with except: in its spec."""
    return "refused"


if __name__ == "__main__":
    server.run("stdio")
