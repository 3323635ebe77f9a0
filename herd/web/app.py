"""The Quart-Trio application factory: config suited to long generations, one error handler, the route
blueprints. Routes get the router's services as an explicit argument (no globals)."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from herd.errors import HerdError
from herd.inference.routes import ROUTES
from herd.observe.broadcaster import Broadcaster
from herd.services import RouterServices
from herd.web import (
    analytics_api,
    authoring_api,
    dashboard,
    errors,
    fleet_api,
    insight_api,
    manage_api,
    media_api,
    ollama_api,
    openai_api,
)


def create_app(services: RouterServices, broadcaster: Broadcaster) -> QuartTrio:
    app = QuartTrio("herd")
    # Quart's RESPONSE_TIMEOUT also covers streamed bodies and would cut long generations at 60 s.
    app.config["RESPONSE_TIMEOUT"] = None
    # Base64 images make big bodies; a slow client on a LAN still gets a generous upload window.
    app.config["MAX_CONTENT_LENGTH"] = services.cfg.max_body_bytes
    app.config["BODY_TIMEOUT"] = services.cfg.body_timeout
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_error_handler(HerdError, errors.on_herd_error)
    app.register_error_handler(HTTPException, errors.on_http_exception)
    app.register_error_handler(Exception, errors.unexpected_handler(services.metrics))
    app.register_blueprint(ollama_api.blueprint(services))
    app.register_blueprint(openai_api.blueprint(services))
    app.register_blueprint(fleet_api.blueprint(services))
    app.register_blueprint(manage_api.blueprint(services))
    app.register_blueprint(media_api.blueprint(services))
    app.register_blueprint(analytics_api.blueprint(services))
    app.register_blueprint(insight_api.blueprint(services))
    app.register_blueprint(dashboard.blueprint(services, broadcaster))
    app.register_blueprint(authoring_api.blueprint(services))
    # The inference routes are served below Quart (`herd.web.fastpath`, POST only); a placeholder per path keeps
    # Quart's usual answers to other methods there (405 with Allow, OPTIONS).
    for path in ROUTES:
        app.add_url_rule(path, endpoint=f"fastpath{path}", view_func=_served_below, methods=["POST"])
    return app


async def _served_below() -> Response:
    raise RuntimeError("served by herd.web.fastpath: the app must run behind it")
