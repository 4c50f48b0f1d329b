"""Ride-hailing driver vetting: Article 14 and the city's rules, decided in seconds.

Layout, one concern per module:

* ``idnumber`` GB 11643 ID numbers; ``privacy`` masking, HMAC person keys, log scrubbing;
* ``models`` applications, records, findings; ``validation`` + ``intake`` JSON in, models or rejections out;
* ``rules`` the rule engine; ``article14`` the national rules; ``local`` Xiamen's and optional city rules;
  ``calendar`` date arithmetic;
* ``service`` decisions and monitoring over the tables; ``tables`` raw-keyed Faust tables;
* ``topics``, ``agents``, ``api`` (HTTP), ``waiter`` (answering HTTP with the owner's decision);
* ``simulator`` applicants and records for demos and tests.
"""
