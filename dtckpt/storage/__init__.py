"""Where checkpoint bytes live: the storage layer, below ``format`` and ``checkpoint``.

``durable`` (temporaries, fsync, renames into place, cleaning), ``dirlock`` (the
directory lock) and ``inputs`` (opening regular files only) are the local file
system's commit protocol.
"""
