"""wgdesk-engine: the userspace WireGuard data plane, a drop-in for wireguard-go.

`tun` (the TUN device), `bind` (the UDP sockets), `uapi_server` (the UAPI socket), `loop` (the event
loop around `proto.Device`), `logger` (wireguard-go-style log lines), `daemon` and `main` (the
`wgdesk-engine [-f] IFNAME` command line).
"""
