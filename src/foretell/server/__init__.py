"""Assembling a server from its settings, and running it: uvicorn on this machine, or Ray Serve.

Above the transports (`http`, `grpc`), which never import each other: this is where one
process's pieces are put together and its transports started side by side.
"""
