-- Customers who ordered more than 1,000 EUR last month, biggest first.
SELECT c.id,
       c.name,
       SUM(o.total) AS spent,
       COUNT(*) AS orders
FROM customers AS c
JOIN orders AS o ON o.customer_id = c.id
WHERE o.created_at >= date_trunc('month', now()) - interval '1 month'
  AND o.created_at < date_trunc('month', now())
  AND o.status <> 'cancelled'
GROUP BY c.id, c.name
HAVING SUM(o.total) > 1000
ORDER BY spent DESC
LIMIT 50;
