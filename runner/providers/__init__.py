"""One small client per provider: takes a ProviderHttp, returns frozen dataclasses."""
