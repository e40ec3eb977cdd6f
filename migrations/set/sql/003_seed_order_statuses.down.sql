DELETE FROM order_statuses WHERE code IN ('new', 'paid', 'shipped', 'cancelled');
