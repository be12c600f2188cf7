package demo

import "fmt"

// schemaRoles creates the three roles the template's credentials use and
// the orders database. Passwords are hex, so quoting them is safe.
func schemaRoles(pw map[string]string) string {
	return fmt.Sprintf(`
CREATE ROLE orders_admin LOGIN PASSWORD '%s';
CREATE ROLE orders_rw LOGIN PASSWORD '%s';
CREATE ROLE orders_ro LOGIN PASSWORD '%s';
CREATE DATABASE orders OWNER orders_admin;
`, pw["orders_admin"], pw["orders_rw"], pw["orders_ro"])
}

// schemaTables creates the sample tables, with PII-looking columns, as the
// admin role, and gives the read and write roles what their names say, so
// the database enforces the access level a second time.
func schemaTables(customers int) string {
	return fmt.Sprintf(`
SET ROLE orders_admin;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE TABLE customers (
  id         serial PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL,
  ssn        text,
  card       text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id          serial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers,
  amount      numeric(10,2) NOT NULL,
  status      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email, ssn, card)
SELECT 'Customer ' || i,
       'customer' || i || '@example.com',
       lpad((100 + i %% 800)::text, 3, '0') || '-' || lpad((i %% 99 + 1)::text, 2, '0') || '-' || lpad((i %% 9999)::text, 4, '0'),
       '4111 1111 1111 ' || lpad((i %% 10000)::text, 4, '0')
FROM generate_series(1, %d) AS i;
INSERT INTO orders (customer_id, amount, status)
SELECT 1 + (i %% %d), round((random() * 500)::numeric, 2), (ARRAY['new','paid','shipped','returned'])[1 + i %% 4]
FROM generate_series(1, %d) AS i;
GRANT USAGE ON SCHEMA public TO orders_ro, orders_rw;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO orders_ro;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orders_rw;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO orders_rw;
ANALYZE;
`, customers, customers, customers*5)
}
