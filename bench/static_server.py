"""The floor for serving bytes: a plain aiohttp handler returning a static body of a given file.

python bench/static_server.py BODY_FILE PORT
"""

import sys

from aiohttp import web

body = open(sys.argv[1], "rb").read()


async def handler(request: web.Request) -> web.Response:
    return web.Response(body=body, content_type="text/plain")


app = web.Application()
app.router.add_get("/metrics", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
