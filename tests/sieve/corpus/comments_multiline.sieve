/* A block comment
   spanning lines */
require ["fileinto"]; # trailing comment
if header :contains "Subject" text:
Lunch
.
{ fileinto "Multi"; }
