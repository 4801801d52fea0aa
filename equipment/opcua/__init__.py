"""OPC UA: the collector, the simulator, address-space browsing and the application's security."""
