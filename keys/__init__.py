"""The ground floor: key store, CA, certificate profiles, OCSP, CRL, TSA, audit log."""
