"""Socket.IO: the server, connect/identify, emitters, the broadcast fast path,
engine.io sessions, the live-feed cap, loop and GC monitoring. The only
package that relies on socket library internals.
"""
