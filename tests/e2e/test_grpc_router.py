# SPDX-License-Identifier: Apache-2.0
"""grpc-router (services/grpc-router), the one port of `triton-dynamo up`, where it is hard on it: HTTP/2 flow control
with a client's small windows while large answers and control calls share one connection (from gRPC's own client, and
from a raw HTTP/2 client that grants its connection window only once it is used up), a request larger than the
control service's window, the control service gone, and a client that does not speak HTTP/2.

Each test runs a router of its own, with --verbose, in front of the session's stack (its frontend's own port and its
control service), so that its log can show what it did."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from triton_dynamo.stack.proxy import find_grpc_router, grpc_router_command

from .processes import StackProcess, free_ports

pytestmark = pytest.mark.skipif(
    find_grpc_router() is None, reason="grpc-router is not built (scripts/test.sh builds it)"
)

# A client that grants little: 1 KiB stream windows to start with and no growing them (gRPC's BDP probe off), so that
# the router has to hold answers back for the client's windows.
SMALL_WINDOWS = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 1024),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


class Router:
    def __init__(self, stack: StackProcess, log_path: Path, control_port: int | None = None) -> None:
        (port,) = free_ports(1)
        self.url = f"127.0.0.1:{port}"
        self.log_path = log_path
        argv = grpc_router_command(
            find_grpc_router(), "127.0.0.1", port, stack.frontend_port, control_port or stack.control_port
        )
        with log_path.open("wb") as log:
            self.process = subprocess.Popen([*argv, "--verbose"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"grpc-router did not start: {self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def router(file_stack: StackProcess, tmp_path: Path) -> Iterator[Router]:
    if not file_stack.proxied:
        pytest.skip("the stack runs without a one-port router")
    router = Router(file_stack, tmp_path / "router.log")
    yield router
    router.stop()


def test_large_answers_and_control_calls_share_one_connection_within_a_small_client_window(router: Router) -> None:
    data = np.random.default_rng(0).random(150528, dtype=np.float32)  # 602 KB each way

    async def run() -> tuple[list[bool], list[int]]:
        client = grpcaio.InferenceServerClient(router.url, channel_args=SMALL_WINDOWS)

        async def infer() -> bool:
            item = grpcaio.InferInput("INPUT0", [data.size], "FP32")
            item.set_data_from_numpy(data)
            answer = await client.infer("identity_fp32", [item])
            return bool(np.array_equal(answer.as_numpy("OUTPUT0"), data))

        async def control() -> int:
            metadata = await client.get_server_metadata()
            index = await client.get_model_repository_index()
            assert metadata.name.startswith("triton-dynamo")
            return len(index.models)

        try:
            answers = await asyncio.gather(*(infer() for _ in range(16)), *(control() for _ in range(16)))
        finally:
            await client.close()
        return answers[:16], answers[16:]

    equal, model_counts = asyncio.run(asyncio.wait_for(run(), timeout=120))
    assert equal == [True] * 16
    assert len(set(model_counts)) == 1 and model_counts[0] > 1
    assert router.process.poll() is None


def grpc_message(message) -> bytes:
    payload = message.SerializeToString()
    return struct.pack(">?I", False, len(payload)) + payload


def grpc_headers(url: str, method: str) -> list[tuple[str, str]]:
    """The request headers of a call of ``method`` of Triton's service, as a gRPC client sends them."""
    path = f"/inference.GRPCInferenceService/{method}"
    pseudo = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", url)]
    return [*pseudo, ("content-type", "application/grpc"), ("te", "trailers")]


def test_answers_wait_for_a_connection_window_granted_only_when_used_up(router: Router) -> None:
    """HTTP/2's connection window starts at 65535 bytes; this client grants another 65535 only once all of it is
    used, as gRPC's C core may. The router has to split a 16 KiB frame of the frontend to fit what is left, or the
    call stalls, and must never send past the window (h2 raises FlowControlError then)."""
    data = np.random.default_rng(1).random(150528, dtype=np.float32)
    infer = service_pb2.ModelInferRequest(model_name="identity_fp32")
    infer.inputs.add(name="INPUT0", datatype="FP32", shape=[data.size])
    infer.raw_input_contents.append(data.tobytes())
    calls = {"ModelInfer": grpc_message(infer), "ServerMetadata": grpc_message(service_pb2.ServerMetadataRequest())}
    host, port = router.url.split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    )
    conn.initiate_connection()
    to_send: dict[int, bytes] = {}
    method_of: dict[int, str] = {}
    for method in ["ModelInfer", "ServerMetadata"] * 3:
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, grpc_headers(router.url, method))
        to_send[stream], method_of[stream] = calls[method], method
    received = {stream: b"" for stream in method_of}
    status: dict[int, str] = {}
    unacknowledged = 0  # bytes of the connection window used and not yet granted again
    held_back = False  # whether the window ever had less left than a frame of 16 KiB
    try:
        while len(status) < len(method_of):
            for stream, rest in list(to_send.items()):  # requests, as far as the router's windows let them
                while n := min(len(rest), conn.local_flow_control_window(stream), conn.max_outbound_frame_size):
                    conn.send_data(stream, rest[:n], end_stream=n == len(rest))
                    rest = rest[n:]
                if rest:
                    to_send[stream] = rest
                else:
                    del to_send[stream]
            sock.sendall(conn.data_to_send())
            chunk = sock.recv(1 << 20)
            assert chunk, "the router closed the connection"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    received[event.stream_id] += event.data
                    unacknowledged += event.flow_controlled_length
                    held_back |= 0 < 65535 - unacknowledged < 16384
                    if unacknowledged == 65535:
                        conn.increment_flow_control_window(65535)
                        unacknowledged = 0
                elif isinstance(event, h2.events.TrailersReceived):
                    status[event.stream_id] = dict(event.headers)[b"grpc-status"].decode()
    finally:
        sock.close()
    assert set(status.values()) == {"0"}
    for stream, method in method_of.items():
        (length,) = struct.unpack(">I", received[stream][1:5])
        assert len(received[stream]) == 5 + length
        if method == "ModelInfer":
            answer = service_pb2.ModelInferResponse.FromString(received[stream][5:])
            assert np.array_equal(np.frombuffer(answer.raw_output_contents[0], np.float32), data)
        else:
            assert service_pb2.ServerMetadataResponse.FromString(received[stream][5:]).name.startswith("triton-dynamo")
    assert held_back
    assert "holding answers: the client's connection window" in router.log()


def test_a_request_larger_than_the_control_services_window_reaches_it_whole(router: Router) -> None:
    client = grpcclient.InferenceServerClient(router.url)
    try:
        # 1 MiB in a file: override, which the control service refuses in its own words: it read the whole request.
        with pytest.raises(InferenceServerException, match="file: parameters of RepositoryModelLoad are not supported"):
            client.load_model("identity", files={"file:1/model.py": b"x" * (1 << 20)})
        assert client.is_model_ready("identity")
    finally:
        client.close()


def test_without_the_control_service_its_calls_are_unavailable_and_inference_goes_on(
    file_stack: StackProcess, tmp_path: Path
) -> None:
    if not file_stack.proxied:
        pytest.skip("the stack runs without a one-port router")
    (nobody,) = free_ports(1)
    router = Router(file_stack, tmp_path / "router.log", control_port=nobody)
    client = grpcclient.InferenceServerClient(router.url)
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.get_server_metadata()
        assert refused.value.status() == "StatusCode.UNAVAILABLE"
        assert "the control service is unavailable" in refused.value.message()
        item = grpcclient.InferInput("INPUT0", [4], "FP32")
        item.set_data_from_numpy(np.arange(4, dtype=np.float32))
        answer = client.infer("identity_fp32", [item]).as_numpy("OUTPUT0")
        assert np.array_equal(answer, np.arange(4, dtype=np.float32))
        assert client.is_server_ready()
    finally:
        client.close()
        router.stop()


def test_frames_still_coming_on_a_failed_control_call_end_nothing(file_stack: StackProcess, tmp_path: Path) -> None:
    """A control call the router fails (no control service) while the client is still sending it: the client's frames
    on that stream, sent before it learnt of the failure and after it opened a frontend call with a higher id, end
    nothing (the frontend takes them for a closed stream of its own); the connection and its inference go on."""
    if not file_stack.proxied:
        pytest.skip("the stack runs without a one-port router")
    (nobody,) = free_ports(1)
    router = Router(file_stack, tmp_path / "router.log", control_port=nobody)
    host, port = router.url.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()

    def events_until(done) -> list:
        seen = []
        while not done(seen):
            chunk = sock.recv(1 << 16)
            assert chunk, "the router closed the connection"
            seen += conn.receive_data(chunk)
            sock.sendall(conn.data_to_send())
        return seen

    try:
        control = conn.get_next_available_stream_id()
        conn.send_headers(control, grpc_headers(router.url, "ServerMetadata"))  # its message is still to come
        sock.sendall(conn.data_to_send())
        failed = events_until(lambda seen: any(isinstance(e, h2.events.StreamReset) for e in seen))
        trailers = [dict(e.headers) for e in failed if isinstance(e, h2.events.ResponseReceived)]
        assert trailers and trailers[0][b"grpc-status"] == b"14"

        data = np.arange(16, dtype=np.float32)
        infer = service_pb2.ModelInferRequest(model_name="identity_fp32")
        infer.inputs.add(name="INPUT0", datatype="FP32", shape=[data.size])
        infer.raw_input_contents.append(data.tobytes())
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, grpc_headers(router.url, "ModelInfer"))
        conn.send_data(stream, grpc_message(infer), end_stream=True)
        late = grpc_message(service_pb2.ServerMetadataRequest())  # the control call's message, sent too late
        late_frame = struct.pack(">I", len(late))[1:] + bytes([0, 1]) + struct.pack(">I", control) + late
        sock.sendall(conn.data_to_send() + late_frame)
        answered = events_until(lambda seen: any(isinstance(e, h2.events.StreamEnded) for e in seen))
    finally:
        sock.close()
        router.stop()
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in answered)
    body = b"".join(e.data for e in answered if isinstance(e, h2.events.DataReceived) and e.stream_id == stream)
    trailers = [dict(e.headers) for e in answered if isinstance(e, h2.events.TrailersReceived)]
    assert trailers and trailers[0][b"grpc-status"] == b"0"
    answer = service_pb2.ModelInferResponse.FromString(body[5:])
    assert np.array_equal(np.frombuffer(answer.raw_output_contents[0], np.float32), data)


def test_a_client_that_does_not_speak_http2_is_closed_and_the_router_serves_on(router: Router) -> None:
    host, port = router.url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: triton\r\n\r\n")
        received = b""
        while chunk := raw.recv(1024):  # until the router closes the connection
            received += chunk
    # No answer: at most the frontend's HTTP/2 SETTINGS, which the router passes on as soon as they come, and which
    # may come before the router has read the client's first bytes.
    while received:
        length, kind = int.from_bytes(received[:3], "big"), received[3]
        assert kind == 4, f"the router answered with frame type {kind}"
        received = received[9 + length :]
    client = grpcclient.InferenceServerClient(router.url)
    try:
        assert client.is_server_live() and client.get_server_metadata().name.startswith("triton-dynamo")
    finally:
        client.close()
    assert "a client broke HTTP/2" in router.log()
