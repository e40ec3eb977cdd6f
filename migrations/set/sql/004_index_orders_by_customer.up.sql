-- kubemigrate: no-transaction
-- Built without blocking writes to orders: outside a transaction, as CONCURRENTLY requires.
CREATE INDEX CONCURRENTLY orders_customer_id_idx ON orders (customer_id);
