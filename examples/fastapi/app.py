"""The FastAPI application of the rampart example: run four Uvicorn workers
on ports 8001-8004 behind rampart (see README.md)."""

import os

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/api/upload")
async def upload(request: Request):
    body = await request.body()
    return {"size": len(body), "pid": os.getpid()}


@app.get("/api/{path:path}")
async def api(path: str, request: Request):
    return {
        "path": path,
        "query": str(request.url.query),
        "pid": os.getpid(),
        "client": request.client.host if request.client else None,
        "forwarded_for": request.headers.get("x-forwarded-for"),
        "forwarded_proto": request.headers.get("x-forwarded-proto"),
        "request_id": request.headers.get("x-request-id"),
    }


@app.websocket("/ws/echo")
async def echo(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            message = await ws.receive_text()
            await ws.send_text(f"echo: {message}")
    except WebSocketDisconnect:
        pass
