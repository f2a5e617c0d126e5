"""The API's routes, one module per resource: each `add_routes(app, ...)` adds its own
(on the app itself: the request metrics read the route templates from `app.routes`)."""
