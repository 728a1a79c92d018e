-- A mutuelle lists its own bulk registration jobs (GET /v1/registrations/batches), in creation order.
CREATE INDEX registration_batches_organization ON registration_batches (organization, id);
