"""The route handlers, one module per endpoint: chat completions (also on ``/beta``), FIM
completions, models, the user's balance and health. Handlers stay thin: the work is done by
the gateway and the services they call."""
