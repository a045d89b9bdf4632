-- OSPOS-shaped POS/ERP schema, PostgreSQL flavour. Same tables and additions as schema_sqlite.sql,
-- plus NOTIFY triggers so the edge wakes on a change instead of polling blindly
-- (docs/adr/0002-pos-change-capture.md). Timestamps are 'timestamp(6) without time zone' in UTC.
CREATE TABLE IF NOT EXISTS ospos_items (
  item_id      BIGINT PRIMARY KEY,
  name         TEXT NOT NULL,
  category     TEXT NOT NULL,
  item_number  TEXT,
  cost_price   NUMERIC(15,2) NOT NULL DEFAULT 0,
  unit_price   NUMERIC(15,2) NOT NULL,
  deleted      SMALLINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ospos_sales (
  sale_id      BIGINT PRIMARY KEY,
  sale_time    TIMESTAMP(6) NOT NULL,
  customer_id  BIGINT,
  employee_id  BIGINT NOT NULL DEFAULT 1,
  comment      TEXT,
  sale_status  SMALLINT NOT NULL DEFAULT 0,
  sale_type    SMALLINT NOT NULL DEFAULT 0,
  updated_at   TIMESTAMP(6) NOT NULL
);
CREATE INDEX IF NOT EXISTS ospos_sales_change ON ospos_sales (updated_at, sale_id);
CREATE TABLE IF NOT EXISTS ospos_sales_items (
  sale_id            BIGINT NOT NULL REFERENCES ospos_sales (sale_id),
  item_id            BIGINT NOT NULL,
  description        TEXT,
  line               INTEGER NOT NULL,
  quantity_purchased NUMERIC(15,3) NOT NULL,
  item_cost_price    NUMERIC(15,2) NOT NULL DEFAULT 0,
  item_unit_price    NUMERIC(15,2) NOT NULL,
  discount           NUMERIC(15,2) NOT NULL DEFAULT 0,
  item_location      INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (sale_id, item_id, line)
);
CREATE TABLE IF NOT EXISTS ospos_item_quantities (
  item_id      BIGINT NOT NULL,
  location_id  INTEGER NOT NULL DEFAULT 1,
  quantity     NUMERIC(15,3) NOT NULL,
  updated_at   TIMESTAMP(6) NOT NULL,
  PRIMARY KEY (item_id, location_id)
);
CREATE INDEX IF NOT EXISTS ospos_item_quantities_change ON ospos_item_quantities (updated_at, item_id);
CREATE TABLE IF NOT EXISTS ospos_inventory (
  trans_id        BIGSERIAL PRIMARY KEY,
  trans_items     BIGINT NOT NULL,
  trans_user      BIGINT NOT NULL DEFAULT 1,
  trans_date      TIMESTAMP(6) NOT NULL,
  trans_comment   TEXT,
  trans_location  INTEGER NOT NULL DEFAULT 1,
  trans_inventory NUMERIC(15,3) NOT NULL
);
CREATE INDEX IF NOT EXISTS ospos_inventory_change ON ospos_inventory (trans_date, trans_id);

CREATE OR REPLACE FUNCTION endcap_notify_change() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('endcap_pos', TG_TABLE_NAME);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS endcap_sales_change ON ospos_sales;
CREATE TRIGGER endcap_sales_change AFTER INSERT OR UPDATE ON ospos_sales
  FOR EACH STATEMENT EXECUTE FUNCTION endcap_notify_change();
DROP TRIGGER IF EXISTS endcap_inventory_change ON ospos_inventory;
CREATE TRIGGER endcap_inventory_change AFTER INSERT ON ospos_inventory
  FOR EACH STATEMENT EXECUTE FUNCTION endcap_notify_change();
DROP TRIGGER IF EXISTS endcap_quantities_change ON ospos_item_quantities;
CREATE TRIGGER endcap_quantities_change AFTER INSERT OR UPDATE ON ospos_item_quantities
  FOR EACH STATEMENT EXECUTE FUNCTION endcap_notify_change();
