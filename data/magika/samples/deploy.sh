#!/bin/sh
# Copies the site to the web server and restarts it.
set -eu

host=${1:-www.example.org}
dest=/var/www/site

echo "building the site"
make clean all

echo "copying to $host:$dest"
rsync -az --delete public/ "$host:$dest/"

echo "restarting the server"
ssh "$host" 'sudo systemctl restart nginx'

if curl -fsS "https://$host/health" > /dev/null; then
    echo "deployed"
else
    echo "the health check failed" >&2
    exit 1
fi
