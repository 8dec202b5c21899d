"""A minimal StatusNotifierWatcher (the D-Bus tray of KDE, GNOME's AppIndicator extension and others).

Run as a process on a test's private session bus: it owns ``org.kde.StatusNotifierWatcher``, says a host is
registered (so Qt picks its D-Bus tray icon over XEmbed), and prints ``item SERVICE PATH`` for every item that
registers. Only what the protocol needs for a client to register is implemented.
"""

from __future__ import annotations

import sys

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

NAME = "org.kde.StatusNotifierWatcher"
PATH = "/StatusNotifierWatcher"
IFACE = "org.kde.StatusNotifierWatcher"
PROPS = "org.freedesktop.DBus.Properties"


def main() -> int:
    conn = open_dbus_connection(bus="SESSION")
    reply = conn.send_and_get_reply(message_bus.RequestName(NAME, 4))  # 4 = DO_NOT_QUEUE
    if reply.body[0] != 1:
        print("name taken", flush=True)
        return 1
    items: list[str] = []
    print("ready", flush=True)
    while True:
        msg = conn.receive()
        if msg.header.message_type != MessageType.method_call:
            continue
        fields = msg.header.fields
        iface = fields.get(HeaderFields.interface)
        member = fields.get(HeaderFields.member)
        sender = fields.get(HeaderFields.sender)
        properties = {
            "IsStatusNotifierHostRegistered": ("b", True),
            "ProtocolVersion": ("i", 0),
            "RegisteredStatusNotifierItems": ("as", items),
        }
        if iface == IFACE and member == "RegisterStatusNotifierItem":
            service = msg.body[0]
            path = "/StatusNotifierItem"
            if service.startswith("/"):  # some clients pass only the object path
                service, path = sender, msg.body[0]
            items.append(f"{service}{path}")
            conn.send(new_method_return(msg))
            conn.send(
                new_signal(
                    DBusAddress(PATH, interface=IFACE),
                    "StatusNotifierItemRegistered",
                    "s",
                    (f"{service}{path}",),
                )
            )
            print(f"item {service} {path}", flush=True)
        elif iface == IFACE and member == "RegisterStatusNotifierHost":
            conn.send(new_method_return(msg))
        elif iface == PROPS and member == "Get" and msg.body[1] in properties:
            conn.send(new_method_return(msg, "v", (properties[msg.body[1]],)))
        elif iface == PROPS and member == "GetAll":
            conn.send(new_method_return(msg, "a{sv}", (properties,)))
        elif iface == "org.freedesktop.DBus.Introspectable":
            conn.send(new_method_return(msg, "s", ("<node/>",)))
        else:
            conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"{iface}.{member}",)))


if __name__ == "__main__":
    sys.exit(main())
