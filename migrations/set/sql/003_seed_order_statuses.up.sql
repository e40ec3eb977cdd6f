INSERT INTO order_statuses (code) VALUES ('new'), ('paid'), ('shipped'), ('cancelled');
