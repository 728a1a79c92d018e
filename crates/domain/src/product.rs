//! Reserved for the eligibility and coordination-of-benefits work (issue 4).
