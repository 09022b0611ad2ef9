//! Control API: HTTP/1.1 + JSON on a unix socket.
