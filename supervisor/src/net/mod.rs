//! Network sandboxes: named namespaces, bridges, veth pairs, port mapping.
