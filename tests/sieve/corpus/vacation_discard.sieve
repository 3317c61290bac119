require "vacation";
vacation "Away.";
discard;
