"""OpenAPI document details Litestar leaves out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

# Litestar's own schema plugin for msgspec Structs (not re-exported publicly); a plugin given to
# the app is asked before Litestar's built-in ones, so this subclass replaces it.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema
    from litestar.typing import FieldDefinition


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's Struct schemas, closed (`additionalProperties: false`) where the Struct is.

    Every API input Struct forbids unknown fields (an unknown key is a 422, docs/api.md); the
    document now says so, so clients and generators see the rule the server applies.
    """

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        """Litestar's schema of the Struct, closed when the Struct is."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False  # the registry's component object itself
        return schema
