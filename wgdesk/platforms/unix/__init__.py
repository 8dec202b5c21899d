"""What Linux and macOS share: UNIX-domain sockets for the control endpoint and the engines' UAPI."""
