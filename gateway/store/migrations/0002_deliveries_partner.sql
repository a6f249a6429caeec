-- ClaimDeliveriesFor: the active rows of one partner, in log order.
CREATE INDEX deliveries_active_to ON deliveries (to_division, event_index)
	WHERE state IN ('queued', 'retrying', 'delivering');
