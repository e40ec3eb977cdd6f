DROP TABLE orders;
DROP TABLE order_statuses;
