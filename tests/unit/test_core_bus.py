"""The bus over real pynng sockets in a temp dir: typed round trips, schema checks, timeouts, RPC."""
import msgspec
import pynng
import pytest

from endcap.core import messages as m
from endcap.core.bus import Codec, Publisher, RpcClient, RpcServer, Subscriber
from endcap.core.errors import BusError, BusTimeout, EndcapError, RemoteError

import threading


@pytest.fixture
def sockdir(tmp_path_factory):
    import tempfile
    d = tempfile.mkdtemp(prefix="ecb-")
    yield d


def _recv_after_publish(pub, sub, topic, body, tries=200):
    """Pub/sub drops messages until the subscriber's dial completes: publish until one arrives."""
    for _ in range(tries):
        pub.publish(topic, body)
        try:
            return sub.recv()
        except BusTimeout:
            continue
    raise AssertionError("nothing arrived")


def test_pubsub_round_trip_and_topic_prefix(sockdir):
    addr = f"ipc://{sockdir}/t.pub"
    with Publisher(addr, "test") as pub, Subscriber([addr], ["pos.stock"], "t", recv_timeout_ms=50) as sub:
        body = m.StockChanged([m.StockLevel("42", 3.0, 1.5), m.StockLevel("43", None)])
        msg = _recv_after_publish(pub, sub, "pos.stock", body)
        assert msg.topic == "pos.stock" and msg.body == body and msg.envelope.source == "test"
        assert msg.envelope.schema == m.SCHEMA


def test_topic_prefix_does_not_leak(sockdir):
    addr = f"ipc://{sockdir}/t.pub"
    with pynng.Pub0(listen=addr) as raw, Subscriber([addr], ["pos.stock"], "t", recv_timeout_ms=50) as sub:
        env = Codec("x").encode(m.StockChanged([]))
        # "pos.stockx" shares the prefix but is another topic: the NUL separator keeps it out
        for _ in range(200):
            raw.send(b"pos.stockx\0" + env)
            raw.send(b"pos.stock\0" + env)
            try:
                msg = sub.recv()
                break
            except BusTimeout:
                continue
        assert msg.topic == "pos.stock"
        for _ in range(5):
            raw.send(b"pos.stockx\0" + env)
        with pytest.raises(BusTimeout):
            sub.recv()


def test_foreign_schema_major_is_rejected_and_counted(sockdir):
    addr = f"ipc://{sockdir}/t.pub"
    with pynng.Pub0(listen=addr) as raw, Subscriber([addr], ["pos.stock"], "t", recv_timeout_ms=50) as sub:
        enc = msgspec.msgpack.Encoder()
        body = msgspec.Raw(enc.encode(m.StockChanged([])))
        bad = b"pos.stock\0" + enc.encode(m.Envelope("2.0", "x", 0.0, "evil", body))
        good = b"pos.stock\0" + enc.encode(m.Envelope("1.7", "y", 0.0, "newer-minor", body))
        for _ in range(200):  # until the subscriber is connected
            raw.send(good)
            try:
                sub.recv()
                break
            except BusTimeout:
                continue
        while True:  # drain what queued up while connecting
            try:
                sub.recv()
            except BusTimeout:
                break
        before = sub.rejected
        raw.send(bad)
        raw.send(good)
        msg = sub.recv()  # skips the foreign major, returns the newer minor of ours
        assert msg.envelope.source == "newer-minor"
        assert sub.rejected == before + 1


def test_malformed_body_is_rejected(sockdir):
    c = Codec("x")
    data = c.encode(m.Health("pos", True, "ok"))
    env = c.decode_envelope(data)
    with pytest.raises(BusError):
        c.decode_body(env.body, m.StockChanged)


def test_recv_times_out(sockdir):
    with Subscriber([f"ipc://{sockdir}/none.pub"], ["pos.stock"], "t", recv_timeout_ms=30) as sub:
        with pytest.raises(BusTimeout):
            sub.recv()


def test_long_ipc_path_is_a_clear_error(sockdir):
    with pytest.raises(BusError, match="longer than"):
        Publisher("ipc:///" + "x" * 200, "t")


def test_rpc_ok_error_and_unknown_method(sockdir):
    addr = f"ipc://{sockdir}/t.rpc"

    def stock(q):
        if "bad" in q.skus:
            raise EndcapError("no such thing", code="unknown_sku")
        return m.StockReply([m.StockLevel(s, 1.0) for s in q.skus])

    server = RpcServer(addr, "srv", {"stock": (m.StockQuery, stock)}, recv_timeout_ms=20)
    stop = threading.Event()
    t = threading.Thread(target=lambda: [server.serve_one() for _ in iter(lambda: stop.is_set(), True)])
    t.start()
    try:
        with RpcClient(addr, "cli", timeout_ms=2000) as cli:
            assert cli.call("stock", m.StockQuery(["a"]), m.StockReply).levels[0].sku == "a"
            with pytest.raises(RemoteError) as e:
                cli.call("stock", m.StockQuery(["bad"]), m.StockReply)
            assert e.value.code == "unknown_sku"
            with pytest.raises(RemoteError) as e:
                cli.call("nope", m.Empty(), m.Empty)
            assert e.value.code == "unknown_method"
    finally:
        stop.set()
        t.join()
        server.close()


def test_rpc_call_times_out_without_server(sockdir):
    with RpcClient(f"ipc://{sockdir}/absent.rpc", "cli", timeout_ms=50) as cli:
        with pytest.raises(BusTimeout):
            cli.call("stock", m.StockQuery([]), m.StockReply)
