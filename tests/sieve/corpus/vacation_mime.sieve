require "vacation";
vacation :mime "Content-Type: text/plain; charset=utf-8

Je suis absent.";
