"""A Square-style REST facade over the simulator's OSPOS-shaped POS database (dev and test tool).

Responsibility: serve the replayed store through ``POST /v2/orders/search``,
``POST /v2/inventory/changes/batch-retrieve`` and ``GET /v2/catalog/list``, so the edge's REST adapter
reads the same store the SQL adapter reads; inject 429 faults on demand.

Mapping: ``ospos_sales`` + items → orders (id = ``str(sale_id)``, state OPEN/COMPLETED/CANCELED from
``sale_status``, ``version`` = ``updated_at`` in µs, which only grows when the row changes; a return sale
(``sale_type`` 4) or a negative line → ``returns[].return_line_items`` with positive quantities);
``ospos_inventory`` → ADJUSTMENT (into IN_STOCK when positive, IN_STOCK → SOLD when negative);
``ospos_item_quantities`` → PHYSICAL_COUNT (only the latest count survives in OSPOS); ``ospos_items`` →
CATEGORY, ITEM and ITEM_VARIATION (variation id = ``str(item_id)``, the SKU order lines name).
The Square location ``location_id`` is OSPOS stock location ``int(location_id)``.

Invariants: server cursors are keysets (last row's sort key), so rows changed between pages are
neither skipped nor repeated within one query; date filters are inclusive at both ends; values that
are not numbers or times in the database pass through as text, so a bad row reaches the client as a
bad field (as a real API's data would). Source errors answer 503. Nothing happens at import.
"""
from __future__ import annotations

import base64
import json
import random
import threading
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from endcap.core import timeutil
from endcap.sim.errors import SimError
from endcap.sim.sourcedb import Source, open_source

STATE = {0: "COMPLETED", 1: "OPEN", 2: "CANCELED"}
SORT_COLUMN = {"CREATED_AT": "sale_time", "UPDATED_AT": "updated_at", "CLOSED_AT": "updated_at"}
_EXT = "endcap.sim.rest_api"


class BadRequest(Exception):
    """The request body breaks the API's rules; answered 400 INVALID_REQUEST_ERROR."""


def _error(status: int, category: str, code: str, detail: str) -> Response:
    r = jsonify({"errors": [{"category": category, "code": code, "detail": detail}]})
    r.status_code = status
    return r


def _ts(src: Source, value: Any) -> str:
    try:
        return timeutil.datetime_from_us(src.from_db(value)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, TypeError):
        return str(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _qty(value: Any, negate: bool = False) -> str:
    if _numeric(value):
        q = Decimal(str(value))
        return format((-q if negate else q).normalize(), "f")
    return str(value)


def _money(value: Any) -> dict[str, Any]:
    try:
        amount: Any = int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        amount = str(value)
    return {"amount": amount, "currency": "USD"}


def _encode(state: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _decode(cursor: Any) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
    except (ValueError, TypeError) as e:
        raise BadRequest(f"cursor {cursor!r} is not valid") from e


def _time_param(value: Any, what: str) -> int:
    try:
        return timeutil.us_from_text(str(value))
    except ValueError as e:
        raise BadRequest(f"{what} {value!r} is not an RFC 3339 timestamp") from e


def _limit(body: dict[str, Any], page_limit: int) -> int:
    limit = body.get("limit", page_limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadRequest(f"limit {limit!r} must be a positive integer")
    return min(limit, page_limit)


class _Facade:
    def __init__(self, src: Source, location: str, page_limit: int) -> None:
        self.src, self.location, self.page_limit = src, location, page_limit
        self.loc_int = int(location)

    # orders --------------------------------------------------------------------------------------------
    def search_orders(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.location not in (body.get("location_ids") or []):
            return {}
        query = body.get("query") or {}
        flt, sort = query.get("filter") or {}, query.get("sort") or {}
        field = str(sort.get("sort_field", "CREATED_AT"))
        order = str(sort.get("sort_order", "DESC"))
        if field not in SORT_COLUMN or order not in ("ASC", "DESC"):
            raise BadRequest(f"sort {sort!r} is not supported")
        dtf = flt.get("date_time_filter") or {}
        if any(k != field.lower() for k in dtf):
            raise BadRequest(f"date_time_filter on {sorted(dtf)} must match sort_field {field}")
        col, where, params = SORT_COLUMN[field], [], []
        span = dtf.get(field.lower()) or {}
        if "start_at" in span:
            where.append(f"{col} >= ?")
            params.append(self.src.to_db(_time_param(span["start_at"], "start_at")))
        if "end_at" in span:
            where.append(f"{col} <= ?")
            params.append(self.src.to_db(_time_param(span["end_at"], "end_at")))
        states = (flt.get("state_filter") or {}).get("states")
        if field == "CLOSED_AT":
            states = [s for s in (states or ("COMPLETED", "CANCELED")) if s != "OPEN"]
        if states is not None:
            codes = [k for k, v in STATE.items() if v in states] or [-1]
            where.append(f"sale_status IN ({','.join('?' * len(codes))})")
            params += codes
        if "cursor" in body:
            last_t, last_id = _decode(body["cursor"])
            cmp = ">" if order == "ASC" else "<"
            where.append(f"({col} {cmp} ? OR ({col} = ? AND sale_id {cmp} ?))")
            t = self.src.to_db(int(last_t))
            params += [t, t, int(last_id)]
        limit = _limit(body, self.page_limit)
        rows = self.src.query(
            "SELECT sale_id, sale_time, customer_id, sale_status, sale_type, updated_at, " + col
            + " FROM ospos_sales" + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {col} {order}, sale_id {order} LIMIT ?", params + [limit + 1])
        page, more = rows[:limit], len(rows) > limit
        items: dict[Any, list[tuple]] = {}
        if page:
            ids = [r[0] for r in page]
            for it in self.src.query("SELECT sale_id, item_id, line, quantity_purchased, item_unit_price FROM "
                                     f"ospos_sales_items WHERE sale_id IN ({','.join('?' * len(ids))}) "
                                     "ORDER BY sale_id, line", ids):
                items.setdefault(it[0], []).append(it[1:])
        out: dict[str, Any] = {"orders": [self._order(r, items.get(r[0], [])) for r in page]}
        if more:
            out["cursor"] = _encode([self.src.from_db(page[-1][6]), page[-1][0]])
        return out

    def _order(self, row: tuple, lines: list[tuple]) -> dict[str, Any]:
        sale_id, sale_time, customer_id, status, sale_type, updated_at, _ = row
        updated = _ts(self.src, updated_at)
        o: dict[str, Any] = {"id": str(sale_id), "location_id": self.location,
                             "state": STATE.get(int(status), str(status)),
                             "created_at": _ts(self.src, sale_time), "updated_at": updated}
        try:
            o["version"] = self.src.from_db(updated_at)
        except (ValueError, TypeError):
            pass  # a bad change time reaches the client as a bad updated_at and no version
        if o["state"] != "OPEN":
            o["closed_at"] = updated
        if customer_id is not None:
            o["customer_id"] = str(customer_id)
        sold, returned = [], []
        for item_id, line, qty, price in lines:
            neg = _numeric(qty) and qty < 0
            (returned if neg or int(sale_type) == 4 else sold).append({
                "uid": str(line), "catalog_object_id": str(item_id), "quantity": _qty(qty, negate=neg),
                "base_price_money": _money(price)})
        if sold:
            o["line_items"] = sold
        if returned:
            o["returns"] = [{"uid": f"return-{sale_id}", "return_line_items": returned}]
        return o

    # inventory -----------------------------------------------------------------------------------------
    def inventory_changes(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.location not in (body.get("location_ids") or [self.location]):
            return {}
        types = body.get("types") or ["PHYSICAL_COUNT", "ADJUSTMENT"]
        after = _time_param(body["updated_after"], "updated_after") if "updated_after" in body else -1
        limit = _limit(body, self.page_limit)
        last = _decode(body["cursor"]) if "cursor" in body else None  # [time µs, rank, native id]
        found: list[tuple[int, int, int, dict[str, Any]]] = []
        tables = (("PHYSICAL_COUNT", 0, "SELECT item_id, quantity, updated_at, item_id FROM ospos_item_quantities "
                   "WHERE location_id = ?", "updated_at", "item_id"),
                  ("ADJUSTMENT", 1, "SELECT trans_id, trans_inventory, trans_date, trans_items FROM ospos_inventory "
                   "WHERE trans_location = ?", "trans_date", "trans_id"))
        for kind, rank, sql, tcol, idcol in tables:
            if kind not in types:
                continue
            where, params = [], [self.loc_int]
            if after >= 0:
                where.append(f"{tcol} > ?")
                params.append(self.src.to_db(after))
            if last is not None:
                t = self.src.to_db(int(last[0]))
                if rank == last[1]:
                    where.append(f"({tcol} > ? OR ({tcol} = ? AND {idcol} > ?))")
                    params += [t, t, int(last[2])]
                else:
                    where.append(f"{tcol} {'>=' if rank > last[1] else '>'} ?")
                    params.append(t)
            rows = self.src.query(sql + "".join(" AND " + w for w in where) + f" ORDER BY {tcol}, {idcol} LIMIT ?",
                                  params + [limit + 1])
            for native, qty, when, item_id in rows:
                found.append((self.src.from_db(when), rank, native, self._change(kind, native, qty, when, item_id)))
        found.sort(key=lambda f: f[:3])
        page = found[:limit]
        out: dict[str, Any] = {"changes": [f[3] for f in page]}
        if len(found) > limit:
            out["cursor"] = _encode(list(page[-1][:3]))
        return out

    def _change(self, kind: str, native: int, qty: Any, when: Any, item_id: int) -> dict[str, Any]:
        t = _ts(self.src, when)
        common = {"catalog_object_id": str(item_id), "catalog_object_type": "ITEM_VARIATION",
                  "location_id": self.location, "occurred_at": t, "created_at": t}
        if kind == "PHYSICAL_COUNT":
            us = self.src.from_db(when)
            return {"type": kind, "physical_count": dict(common, id=f"count-{native}-{us}", state="IN_STOCK",
                                                          quantity=_qty(qty))}
        neg = _numeric(qty) and qty < 0
        return {"type": kind, "adjustment": dict(common, id=f"adj-{native}", quantity=_qty(qty, negate=neg),
                                                 from_state="IN_STOCK" if neg else "NONE",
                                                 to_state="SOLD" if neg else "IN_STOCK")}

    # catalog -------------------------------------------------------------------------------------------
    def list_catalog(self, types: list[str], cursor: Optional[str]) -> dict[str, Any]:
        rows = self.src.query("SELECT item_id, name, category, unit_price FROM ospos_items WHERE deleted = 0 "
                              "ORDER BY item_id")
        cats = {c: f"cat-{i}" for i, c in enumerate(sorted({str(r[2]) for r in rows}), 1)}
        objects: list[dict[str, Any]] = []
        if "CATEGORY" in types:
            objects += [{"type": "CATEGORY", "id": cid, "category_data": {"name": c}} for c, cid in cats.items()]
        variations = {r[0]: {"type": "ITEM_VARIATION", "id": str(r[0]), "item_variation_data": {
            "item_id": f"item-{r[0]}", "name": "Regular", "pricing_type": "FIXED_PRICING",
            "price_money": _money(r[3])}} for r in rows}
        if "ITEM" in types:
            objects += [{"type": "ITEM", "id": f"item-{r[0]}", "item_data": {
                "name": str(r[1]), "category_id": cats[str(r[2])], "variations": [variations[r[0]]]}} for r in rows]
        if "ITEM_VARIATION" in types:
            objects += list(variations.values())
        start = int(_decode(cursor)) if cursor else 0
        out: dict[str, Any] = {"objects": objects[start:start + self.page_limit]}
        if start + self.page_limit < len(objects):
            out["cursor"] = _encode(start + self.page_limit)
        return out


def create_app(source_url: str, *, fault_429_rate: float = 0.0, seed: int = 0, page_limit: int = 100,
               token: Optional[str] = None, location_id: str = "1") -> Flask:
    """The facade as a Flask app. ``token``: when set, requests must carry ``Authorization: Bearer <token>``.

    Raises:
        SimError: the source cannot be opened.
    """
    if not 0.0 <= fault_429_rate <= 1.0:
        raise SimError(f"fault_429_rate {fault_429_rate}: must be within [0, 1]")
    facade = _Facade(open_source(source_url), location_id, page_limit)
    lock = threading.Lock()  # one source connection; werkzeug may serve requests on several threads
    rng = random.Random(seed)
    app = Flask(__name__)
    app.extensions[_EXT] = {"source": facade.src}

    @app.before_request
    def _gate() -> Optional[Response]:
        with lock:
            limited = fault_429_rate > 0 and rng.random() < fault_429_rate
        if limited:
            r = _error(429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "simulated rate limit")
            r.headers["Retry-After"] = "1"
            return r
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return _error(401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "missing or wrong access token")
        return None

    def _answer(fn, *args) -> Response:
        with lock:
            try:
                return jsonify(fn(*args))
            except BadRequest as e:
                return _error(400, "INVALID_REQUEST_ERROR", "BAD_REQUEST", str(e))
            except SimError as e:
                return _error(503, "API_ERROR", "SERVICE_UNAVAILABLE", str(e))
            finally:
                facade.src.rollback()  # end the read transaction (PostgreSQL) so the next request sees new rows

    def _body() -> dict[str, Any]:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else {}

    @app.post("/v2/orders/search")
    def search_orders() -> Response:
        return _answer(facade.search_orders, _body())

    @app.post("/v2/inventory/changes/batch-retrieve")
    def inventory_changes() -> Response:
        return _answer(facade.inventory_changes, _body())

    @app.get("/v2/catalog/list")
    def list_catalog() -> Response:
        types = [t for t in request.args.get("types", "ITEM,ITEM_VARIATION,CATEGORY").split(",") if t]
        return _answer(facade.list_catalog, types, request.args.get("cursor"))

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass  # one line per request drowns test and bench output; errors are still logged


def serve(app: Flask) -> str:
    """Serve ``app`` on 127.0.0.1 on a free port in a daemon thread; returns its base URL. Stop with ``shutdown``."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sim-rest-api",
                              daemon=True)
    thread.start()
    app.extensions.setdefault(_EXT, {}).update(server=server, thread=thread)
    return f"http://127.0.0.1:{server.server_port}"


def shutdown(app: Flask) -> None:
    """Stop the server ``serve`` started (if any) and close the source connection."""
    ext = app.extensions.get(_EXT, {})
    server = ext.pop("server", None)
    if server is not None:
        server.shutdown()
        server.server_close()
        ext.pop("thread").join(timeout=5)
    src = ext.pop("source", None)
    if src is not None:
        src.close()
