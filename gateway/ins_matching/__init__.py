"""Patient identities (INS, R7–R9), the INSi interface and its simulator, and document-to-patient matching."""
