require "reject";
discard;
reject "no thanks";
