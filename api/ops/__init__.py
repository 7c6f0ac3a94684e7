"""The operators' console under /ops: server-rendered pages behind the operator role."""
