"""Generated stubs of the Streaming Runtime UDF protocol (udf/MessageService.proto).

Regenerate with `udf/generate_stubs.sh`; never edit the `*_pb2*.py` files by hand.
"""

from udf.protocol.MessageService_pb2 import GrpcMessage, GrpcPayloadCollection
from udf.protocol.MessageService_pb2_grpc import (
    MessagingServiceServicer,
    MessagingServiceStub,
    add_MessagingServiceServicer_to_server,
)

SERVICE_NAME = "org.springframework.cloud.function.grpc.MessagingService"

__all__ = [
    "SERVICE_NAME",
    "GrpcMessage",
    "GrpcPayloadCollection",
    "MessagingServiceServicer",
    "MessagingServiceStub",
    "add_MessagingServiceServicer_to_server",
]
