"""
The bundled client: the line protocol's client side (L{protocol}), plain
mode for scripts (L{plain}), the conch terminal UI (L{terminal}) and the
command line (L{main}).
"""
