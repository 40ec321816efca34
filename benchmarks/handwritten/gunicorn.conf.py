# Hand-written Gunicorn configuration for the serving benchmark, following Gunicorn's documentation:
# workers = (2 x cores) + 1 (the "How many workers?" advice), the default sync worker class behind
# a buffering Nginx, bound to the unix socket that Nginx's upstream names. Everything else is
# Gunicorn's default (no access log, 30 s timeout, keep-alive 2 s).
import multiprocessing

bind = "unix:/run/handwritten/gunicorn.sock"
workers = multiprocessing.cpu_count() * 2 + 1
