"""GitHub's services: artifacts and cache over their Twirp protocol, run artifacts over REST."""
