"""A real MCP server (the ``mcp`` package): the restaurant's menu. Run over stdio
(``python mcp_menu_server.py``) or mounted as a streamable-HTTP app (``app()``)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("menu")


@server.tool()
def todays_specials(day: str = "today") -> dict:
    """The chef's specials of a day."""
    return {"day": day, "specials": ["risotto ai funghi", "branzino"]}


@server.tool()
def allergens(dish: str) -> dict:
    """The allergens of a dish."""
    return {"dish": dish, "allergens": ["gluten"] if "pasta" in dish else []}


@server.tool()
def drop_all_bookings() -> str:
    """An admin function no agent should see."""
    return "dropped"


def app():
    return server.streamable_http_app(stateless_http=True, json_response=True)


if __name__ == "__main__":
    server.run("stdio")
