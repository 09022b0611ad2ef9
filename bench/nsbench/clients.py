"""In-process clients for the supervisors' control sockets, used to read
their own view of program states and to time API round trips without the
cost of starting a CLI: HTTP/1.1 + JSON for nsvisor, XML-RPC for supervisord,
both over a unix socket.
"""

import http.client
import json
import socket
import xmlrpc.client


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection that talks to a unix socket instead of TCP."""

    def __init__(self, path, timeout=30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def nsvisor_get(sock_path, path, timeout=30.0):
    """GET ``path`` on nsvisor's socket; returns (status, decoded JSON or None)."""
    conn = UnixHTTPConnection(sock_path, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, None


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self.unix_path = path

    def make_connection(self, host):
        return UnixHTTPConnection(self.unix_path)


def supervisord_proxy(sock_path):
    """An XML-RPC proxy for supervisord's unix socket (``proxy.supervisor.*``)."""
    return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=_UnixTransport(sock_path))
