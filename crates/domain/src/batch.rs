//! Reserved for beneficiary registration (issue 3).
