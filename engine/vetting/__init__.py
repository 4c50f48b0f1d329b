"""Ride-hailing driver vetting: Article 14 and the city's rules, decided in seconds.

* ``idnumber`` GB 11643 ID numbers; ``privacy`` masking, HMAC person keys, log scrubbing;
* ``models`` applications, records, findings; ``validation`` + ``intake`` JSON in, models or rejections out;
* ``rules`` the rule engine; ``ruleset`` which rules run; ``article14`` the national rules; ``local``
  Xiamen's and optional city rules; ``calendar`` date arithmetic;
* ``service`` decisions and monitoring over the tables; ``topics``, ``agents``, ``api`` (HTTP);
* ``settings`` the ``vetting`` section.

May import plumbing, core and what the alerts domain publishes.
"""
