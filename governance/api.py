from ninja import Router

router = Router(tags=["ML Logs"])
