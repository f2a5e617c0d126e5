"""The dispatcher's HTTP API, an adapter over the core's front door: the hook's guard
(`auth`), its request and response bodies (`schemas`), its errors (`errors`) and its routes
(`routes`). `dispatcher.web.app` serves it beside the pages."""
