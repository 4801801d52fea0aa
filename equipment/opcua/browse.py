"""Browse a live endpoint's address space so that an administrator picks variables instead of typing
NodeIds."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass
class BrowsedNode:
    node_id: str
    browse_name: str
    display_name: str
    node_class: str
    value: Any = None
    data_type: str | None = None

    @property
    def is_variable(self) -> bool:
        return self.node_class == "Variable"


async def browse_endpoint(url: str, node_id: str | None = None, *, security_policy: str = "None",
                          security_mode: str = "None", username: str | None = None, password: str | None = None,
                          timeout: float = 5.0) -> list[BrowsedNode]:
    """The children of a node (the Objects folder by default), with current values of variables."""
    from asyncua import Client, ua

    from equipment.opcua.security import apply_security

    client = Client(url, timeout=timeout)
    await apply_security(client, security_policy, security_mode)
    if username:
        client.set_user(username)
        client.set_password(password or "")
    async with asyncio.timeout(timeout * 2):
        await client.connect()
        try:
            parent = client.get_node(node_id) if node_id else client.nodes.objects
            found = []
            for child in await parent.get_children():
                node_class = await child.read_node_class()
                name = await child.read_browse_name()
                display = await child.read_display_name()
                item = BrowsedNode(child.nodeid.to_string(), name.to_string(), display.Text or name.Name,
                                   node_class.name)
                if node_class == ua.NodeClass.Variable:
                    try:
                        variant = await child.read_data_value()
                        item.value = variant.Value.Value if variant.Value else None
                        item.data_type = variant.Value.VariantType.name if variant.Value else None
                    except Exception:  # a variable we may not read: list it without a value
                        item.value = None
                found.append(item)
            return sorted(found, key=lambda n: (n.node_class != "Object", n.browse_name))
        finally:
            await client.disconnect()


async def browse_children(asset: Any, node_id: str | None = None) -> list[BrowsedNode]:
    from equipment.opcua.security import password_for

    return await browse_endpoint(asset.endpoint_url, node_id, security_policy=asset.security_policy,
                                 security_mode=asset.security_mode, username=asset.opc_username,
                                 password=password_for(asset.code, asset.opc_password_encrypted)
                                 if asset.opc_username else None)
