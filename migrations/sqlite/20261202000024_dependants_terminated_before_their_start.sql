-- A dependant who joined after the day its principal's coverage was later terminated on took
-- the principal's end date, which fell before the dependant's own start: a period ending before
-- it begins (FHIR refuses such a Coverage.period). A coverage terminated before its start keeps
-- no end date and never pays, as a principal's does; the binary now writes it so, and this
-- mends the rows written before. Only terminated rows can hold such a date (an end date sent
-- is checked against the start), and those change no more, so the version moves with the
-- answer's content for the ETag's sake and nothing else is touched.
UPDATE coverages SET end_date = NULL, version = version + 1
WHERE end_date IS NOT NULL AND end_date < start_date AND status = 'terminated';
