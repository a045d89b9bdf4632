-- OSPOS-shaped POS/ERP schema (Open Source Point of Sale 3.x table and column names), SQLite flavour.
-- Additions to OSPOS, needed for change capture and documented in docs/adr/0002-pos-change-capture.md:
--   ospos_sales.updated_at, ospos_item_quantities.updated_at  (change time, microsecond text
--   'YYYY-MM-DD HH:MM:SS.ffffff', set by the POS on every insert/update)
-- sale_status: 0 completed, 1 suspended, 2 cancelled.  sale_type: 0 POS sale, 4 return
-- (OSPOS stores returned items with a negative quantity_purchased).
CREATE TABLE IF NOT EXISTS ospos_items (
  item_id      INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  category     TEXT NOT NULL,
  item_number  TEXT,
  cost_price   NUMERIC NOT NULL DEFAULT 0,
  unit_price   NUMERIC NOT NULL,
  deleted      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ospos_sales (
  sale_id      INTEGER PRIMARY KEY,
  sale_time    TEXT NOT NULL,
  customer_id  INTEGER,
  employee_id  INTEGER NOT NULL DEFAULT 1,
  comment      TEXT,
  sale_status  INTEGER NOT NULL DEFAULT 0,
  sale_type    INTEGER NOT NULL DEFAULT 0,
  updated_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ospos_sales_change ON ospos_sales (updated_at, sale_id);
CREATE TABLE IF NOT EXISTS ospos_sales_items (
  sale_id            INTEGER NOT NULL REFERENCES ospos_sales (sale_id),
  item_id            INTEGER NOT NULL,
  description        TEXT,
  line               INTEGER NOT NULL,
  quantity_purchased NUMERIC NOT NULL,
  item_cost_price    NUMERIC NOT NULL DEFAULT 0,
  item_unit_price    NUMERIC NOT NULL,
  discount           NUMERIC NOT NULL DEFAULT 0,
  item_location      INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (sale_id, item_id, line)
);
CREATE TABLE IF NOT EXISTS ospos_item_quantities (
  item_id      INTEGER NOT NULL,
  location_id  INTEGER NOT NULL DEFAULT 1,
  quantity     NUMERIC NOT NULL,
  updated_at   TEXT NOT NULL,
  PRIMARY KEY (item_id, location_id)
);
CREATE INDEX IF NOT EXISTS ospos_item_quantities_change ON ospos_item_quantities (updated_at, item_id);
CREATE TABLE IF NOT EXISTS ospos_inventory (
  trans_id        INTEGER PRIMARY KEY AUTOINCREMENT,
  trans_items     INTEGER NOT NULL,
  trans_user      INTEGER NOT NULL DEFAULT 1,
  trans_date      TEXT NOT NULL,
  trans_comment   TEXT,
  trans_location  INTEGER NOT NULL DEFAULT 1,
  trans_inventory NUMERIC NOT NULL
);
CREATE INDEX IF NOT EXISTS ospos_inventory_change ON ospos_inventory (trans_date, trans_id);
