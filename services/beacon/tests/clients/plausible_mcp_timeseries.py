"""Asks the plausible-mcp server (PyPI, run unmodified over MCP's stdio transport) for a site's
daily timeseries and prints the tool's answer. Used by tests/it/plausible_clients.rs.

usage: plausible_mcp_timeseries.py SERVER_COMMAND SITE DATE_RANGE
(the server reads PLAUSIBLE_BASE_URL and PLAUSIBLE_API_KEY from the environment)
"""
import asyncio
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(server: str, site: str, date_range: str) -> None:
    params = StdioServerParameters(command=server, args=[], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(
                "get_timeseries",
                {"site_id": site, "date_range": date_range, "interval": "date"},
            )
            if getattr(result, "is_error", None) or getattr(result, "isError", None):
                sys.exit(f"tool error: {result.content}")
            for item in result.content:
                print(item.text)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
