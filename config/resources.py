"""Pydantic models of the Streaming Runtime resources: Stream, ClusterStream, Processor;
and of the Kubernetes `Secret` and servicebinding.io `ServiceBinding` documents
that the Streaming Runtime's samples put beside them to carry credentials.

Field names are the CRDs' (`streaming.tanzu.vmware.com/v1alpha1`), camelCase in
YAML, so a user's `streaming-pipeline.yaml` loads unchanged. The models check
structure only (required fields, types, unknown keys, closed vocabularies);
what the fields mean together is `config.resolve`'s job.

Unknown keys are errors, because a misspelt key would otherwise be silently
ignored; the exceptions are the CRDs' free-form string maps (`attributes`,
`options`), Kubernetes `metadata`, and the pod template, whose full schema is
Kubernetes' and not ours.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator
from pydantic.alias_generators import to_camel

API_VERSION = "streaming.tanzu.vmware.com/v1alpha1"

PRIMITIVE_TYPES = ("string", "int", "long", "float", "double", "boolean", "bytes")
PROCTIME = "proctime"
LOGICAL_TYPES = {
    "timestamp-millis": "long",
    "timestamp-micros": "long",
    "local-timestamp-millis": "long",
    "local-timestamp-micros": "long",
    "time-micros": "long",
    "time-millis": "int",
    "date": "int",
    "uuid": "string",
}


def _scalar_to_text(value: Any) -> Any:
    """YAML turns `"2"`-less values into ints and booleans; the CRD maps hold strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


TextValue = Annotated[str, BeforeValidator(_scalar_to_text)]
StringMap = dict[str, TextValue]


class CrdModel(BaseModel):
    """Strict base: camelCase aliases, unknown keys rejected, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class OpenModel(CrdModel):
    """For parts whose full schema belongs to Kubernetes: extra keys are kept."""

    model_config = ConfigDict(extra="allow")


class ObjectMeta(BaseModel):
    """Kubernetes metadata: only `name` matters here; the rest is tolerated."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    namespace: str | None = None
    labels: StringMap = {}
    annotations: StringMap = {}


# --- Stream ------------------------------------------------------------------


class FieldMetadata(CrdModel):
    from_: str = Field(alias="from", min_length=1)
    readonly: bool = True


class SchemaFieldModel(CrdModel):
    """A meta-schema field: Avro type, `<type>_<logicalType>` shortcut, or `proctime`."""

    name: str = Field(min_length=1)
    type: str
    logical_type: str | None = None
    optional: bool = False
    watermark: str | None = None
    metadata: FieldMetadata | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        base, _, logical = value.partition("_")
        if base.lower() == PROCTIME and not logical:
            return value
        if base.lower() not in PRIMITIVE_TYPES:
            raise ValueError(
                f"unknown schema type {value!r} (expected one of {', '.join(PRIMITIVE_TYPES)}, {PROCTIME},"
                " or <type>_<logicalType> such as long_timestamp-millis)"
            )
        if logical and logical not in LOGICAL_TYPES:
            raise ValueError(f"unknown logical type {logical!r} in {value!r} (expected one of {', '.join(LOGICAL_TYPES)})")
        return value

    @field_validator("logical_type")
    @classmethod
    def _known_logical_type(cls, value: str | None) -> str | None:
        if value is not None and value not in LOGICAL_TYPES:
            raise ValueError(f"unknown logical type {value!r} (expected one of {', '.join(LOGICAL_TYPES)})")
        return value


class RecordSchema(CrdModel):
    namespace: str
    name: str = Field(min_length=1)
    fields: list[SchemaFieldModel] = Field(min_length=1)


class InlineSchema(CrdModel):
    type: Literal["avro", "avro-confluent", "sql"]
    schema_: str = Field(alias="schema")


class TimeAttributeModel(CrdModel):
    name: str = Field(min_length=1)
    watermark: str | None = None


class DataSchemaContext(CrdModel):
    """Exactly one of `schema` (meta-schema), `inline` (Avro/SQL text) or `schemaless`."""

    schemaless: str | None = None
    inline: InlineSchema | None = None
    schema_: RecordSchema | None = Field(default=None, alias="schema")
    schema_registry_uri: str | None = None
    metadata_fields: list[SchemaFieldModel] = []
    primary_key: list[str] = []
    time_attributes: list[TimeAttributeModel] = []
    options: StringMap = {}


class StreamStorage(CrdModel):
    cluster_stream: str | None = None


class StreamSpec(CrdModel):
    """`spec.name` is required by the CRD, but the seed omits it: then `metadata.name` is used."""

    name: str | None = None
    protocol: Literal["kafka", "rabbitmq"]
    keys: list[str] = []
    key_expression: str | None = None
    partition_count: int | None = Field(default=None, ge=1)
    stream_mode: list[Literal["read", "write"]] | None = None
    storage: StreamStorage | None = None
    attributes: StringMap = {}
    binding: str | None = None
    data_schema_context: DataSchemaContext | None = None


class Stream(CrdModel):
    api_version: Literal["streaming.tanzu.vmware.com/v1alpha1"]
    kind: Literal["Stream"]
    metadata: ObjectMeta
    spec: StreamSpec
    status: Any = None


# --- ClusterStream -----------------------------------------------------------


class StorageServer(CrdModel):
    url: str | None = None
    protocol: str | None = None
    binding: str | None = None


class ClusterStorage(CrdModel):
    server: StorageServer | None = None
    servers: list[StorageServer] = []  # the CRD's earlier, list-valued form
    attributes: StringMap = {}
    reclaim_policy: str | None = None

    @property
    def first_server(self) -> StorageServer | None:
        return self.server or (self.servers[0] if self.servers else None)


class ClusterStreamSpec(CrdModel):
    name: str | None = None
    keys: list[str] = []
    stream_modes: list[Literal["read", "write"]] = []
    storage: ClusterStorage | None = None


class ClusterStream(CrdModel):
    api_version: Literal["streaming.tanzu.vmware.com/v1alpha1"]
    kind: Literal["ClusterStream"]
    metadata: ObjectMeta
    spec: ClusterStreamSpec
    status: Any = None


# --- Processor ---------------------------------------------------------------


class StreamRef(CrdModel):
    name: str = Field(min_length=1)


class QueryInputs(CrdModel):
    """The seed document's `spec.inputs`: SQL queries plus the UDF's input streams."""

    query: list[str] = []
    sources: list[StreamRef] = []


class EnvVar(OpenModel):
    name: str
    value: TextValue | None = None


class Container(OpenModel):
    name: str = Field(min_length=1)
    image: str | None = None
    env: list[EnvVar] = []


class PodSpec(OpenModel):
    containers: list[Container] = []


class PodTemplate(OpenModel):
    spec: PodSpec | None = None


def _inputs_form(value: Any) -> str | None:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "query"
    return None


INPUT_FORM_TAGS = ("list", "query")

ProcessorInputs = Annotated[
    Union[Annotated[list[StreamRef], Tag("list")], Annotated[QueryInputs, Tag("query")]],
    Discriminator(
        _inputs_form,
        custom_error_type="inputs_form",
        custom_error_message="expected a list of {name: <stream>} or a mapping with query/sources",
    ),
]

ProcessorType = Literal["SRP", "FSQL", "SCS", "TWA"]


class ProcessorSpec(CrdModel):
    """Both forms: the seed's (`inputs.query`, `inputs.sources`) and the typed one (FSQL/SRP)."""

    type: ProcessorType = "SRP"
    attributes: StringMap = {}
    inline_query: list[str] | None = None
    inputs: ProcessorInputs | None = None
    outputs: list[StreamRef] = []
    replicas: int | None = Field(default=None, ge=0)
    template: PodTemplate | None = None

    @property
    def containers(self) -> list[Container]:
        if self.template is None or self.template.spec is None:
            return []
        return self.template.spec.containers


class Processor(CrdModel):
    api_version: Literal["streaming.tanzu.vmware.com/v1alpha1"]
    kind: Literal["Processor"]
    metadata: ObjectMeta
    spec: ProcessorSpec
    status: Any = None


# --- Secret, ServiceBinding ----------------------------------------------------


class Secret(CrdModel):
    """A Kubernetes `v1/Secret`: `data` (base64) and `stringData` (text).

    `entries` holds both decoded, `stringData` winning as in Kubernetes. A
    Stream or ClusterStream names it in `binding`."""

    api_version: Literal["v1"]
    kind: Literal["Secret"]
    metadata: ObjectMeta
    type: str | None = None
    data: StringMap = {}
    string_data: StringMap = {}
    immutable: bool | None = None

    @field_validator("data")
    @classmethod
    def _base64(cls, value: dict[str, str]) -> dict[str, str]:
        decoded = {}
        for key, text in value.items():
            try:
                decoded[key] = base64.b64decode(text, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                # the value itself is never repeated: it is a secret
                raise ValueError(f"data.{key} is not base64 text (put plain text under stringData)") from None
        return decoded

    @property
    def entries(self) -> dict[str, str]:
        return {**self.data, **self.string_data}


class BindingService(OpenModel):
    """The service a ServiceBinding projects: here, a Secret by name."""

    api_version: str | None = None
    kind: str | None = None
    name: str = Field(min_length=1)


class BindingEnv(CrdModel):
    """An entry of the binding projected into an environment variable."""

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class ServiceBindingSpec(OpenModel):
    """`spec.name` names the binding's directory under `$SERVICE_BINDING_ROOT`
    (default: `metadata.name`); `workload` is Kubernetes' business."""

    name: str | None = None
    type: str | None = None
    provider: str | None = None
    service: BindingService
    workload: Any = None
    env: list[BindingEnv] = []


class ServiceBinding(CrdModel):
    api_version: Literal["servicebinding.io/v1beta1", "servicebinding.io/v1alpha3", "servicebinding.io/v1"]
    kind: Literal["ServiceBinding"]
    metadata: ObjectMeta
    spec: ServiceBindingSpec
    status: Any = None


Resource = Union[Stream, ClusterStream, Processor, Secret, ServiceBinding]
RESOURCE_KINDS: dict[str, type[Resource]] = {  # type: ignore[valid-type]
    "Stream": Stream,
    "ClusterStream": ClusterStream,
    "Processor": Processor,
    "Secret": Secret,
    "ServiceBinding": ServiceBinding,
}
SECRET_KINDS = frozenset({"Secret"})  # documents whose values are never repeated in a message


def known_field_names() -> frozenset[str]:
    """Every key the models accept, for "did you mean" hints on misspelt keys."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = [m for m in CrdModel.__subclasses__()]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        pending.extend(model.__subclasses__())
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
    return frozenset(names)
