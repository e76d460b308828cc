"""Layer 1, card facts without I/O: ATR identification (``atr``), holder identity from
certificates (``identity``), ANS nomenclatures (``nomenclature``), OIDs (``oids``) and
status words (``status_words``). Import the module you need."""

__all__: list[str] = []
