# frozen_string_literal: true

# Shared setup for the Ruby delayed_job peer scripts (schema.rb, enqueue.rb, work.rb).
#
# Environment:
#   DJ_DATABASE    sqlite3:/path/file.db | /path/file.db | mysql2://user[:pw]@host:port/dbname
#                  | postgresql://user[:pw]@host:port/dbname
#   DJ_TIMEZONE    ActiveRecord default_timezone: utc (default) or local
#   DJ_TIME_ZONE   ActiveSupport Time.zone (default UTC)
#   DJ_RECORD      file that perform methods append one JSON line to (default: stdout)
#   DJ_SQL_LOG     1 = log ActiveRecord SQL to stderr
#   DJ_DETERMINISTIC  1 = fixed clock and job ids (used by dump_fixtures.rb)

require 'logger'
require 'json'
require 'base64'
require 'bigdecimal'
require 'bigdecimal/util'
require 'date'
require 'set'
require 'securerandom'
require 'uri'
require 'active_support'
require 'active_support/core_ext'
require 'active_record'
require 'delayed_job'
require 'delayed_job_active_record'

module DjLab
  HAVE_ACTIVEJOB = begin
    require 'globalid'
    require 'active_job'
    true
  rescue LoadError
    false
  end

  HAVE_ACTIONMAILER = HAVE_ACTIVEJOB && begin
    require 'action_mailer'
    true
  rescue LoadError
    false
  end

  FIXED_NOW = Time.utc(2024, 1, 1, 12, 0, 0)

  module_function

  def deterministic?
    ENV['DJ_DETERMINISTIC'] == '1'
  end

  # ActiveRecord connection config from DJ_DATABASE.
  def database_config(url = ENV.fetch('DJ_DATABASE') { abort 'DJ_DATABASE is not set' })
    case url
    when %r{\Asqlite3:(?://)?(.+)\z}
      { adapter: 'sqlite3', database: Regexp.last_match(1), timeout: 10_000 }
    when %r{\Amysql2://}
      uri = URI.parse(url)
      {
        adapter: 'mysql2',
        host: uri.host || '127.0.0.1',
        port: uri.port || 3306,
        username: uri.user ? URI.decode_www_form_component(uri.user) : 'root',
        password: uri.password ? URI.decode_www_form_component(uri.password) : nil,
        database: uri.path.sub(%r{\A/}, ''),
        encoding: 'utf8mb4',
      }.compact
    when %r{\A(postgres|postgresql|postgis)://}
      uri = URI.parse(url)
      {
        adapter: 'postgresql',
        host: uri.host || '127.0.0.1',
        port: uri.port || 5432,
        username: uri.user ? URI.decode_www_form_component(uri.user) : nil,
        password: uri.password ? URI.decode_www_form_component(uri.password) : nil,
        database: uri.path.sub(%r{\A/}, ''),
      }.compact
    when %r{\A[^:]+\z}
      { adapter: 'sqlite3', database: url, timeout: 10_000 }
    else
      abort "DJ_DATABASE: unsupported #{url.inspect} (sqlite3:/path.db, mysql2://root@127.0.0.1:3306/db or postgresql://user:pw@127.0.0.1:5432/db)"
    end
  end

  # Connects ActiveRecord; with create: true a missing MariaDB/MySQL database is created first.
  def connect(create: false)
    config = database_config
    if create && config[:adapter] == 'mysql2'
      ActiveRecord::Base.establish_connection(config.except(:database))
      ActiveRecord::Base.connection.execute(
        "CREATE DATABASE IF NOT EXISTS `#{config[:database]}` CHARACTER SET utf8mb4"
      )
      ActiveRecord::Base.remove_connection
    end
    ActiveRecord::Base.establish_connection(config)
  end

  def default_timezone=(zone)
    if ActiveRecord.respond_to?(:default_timezone=)
      ActiveRecord.default_timezone = zone # Rails 7+
    else
      ActiveRecord::Base.default_timezone = zone
    end
  end

  # Append one JSON line describing a call a job made, to DJ_RECORD (or stdout).
  def record(call, **fields)
    job = Thread.current[:dj_lab_job]
    line = {
      'call' => call,
      'job_id' => job&.id,
      'attempts' => job&.attempts,
      'queue' => job&.queue,
      'pid' => Process.pid,
    }.merge(fields.transform_keys(&:to_s))
    text = JSON.generate(line) + "\n"
    path = ENV['DJ_RECORD']
    if path.nil? || path.empty?
      $stdout.write(text)
      $stdout.flush
    else
      File.open(path, 'a') do |f|
        f.flock(File::LOCK_EX)
        f.write(text)
      end
    end
  end

  def regexp_flags(re)
    flags = +''
    flags << 'i' if re.options & Regexp::IGNORECASE != 0
    flags << 'm' if re.options & Regexp::MULTILINE != 0
    flags << 'x' if re.options & Regexp::EXTENDED != 0
    flags
  end

  def pairs(hash)
    hash.map { |k, v| [describe(k), describe(v)] }
  end

  # JSON-able description of a Ruby value (the format is documented in tests/ruby/README.md).
  def describe(value)
    case value
    when nil, true, false then value
    when ActiveSupport::Duration
      { 'duration' => value.to_i, 'parts' => value.parts.to_h { |k, v| [k.to_s, describe(v)] } }
    when Integer then value
    when Float
      if value.nan? then { 'float' => 'nan' }
      elsif value.infinite? then { 'float' => value.positive? ? 'inf' : '-inf' }
      else value
      end
    when BigDecimal then { 'bigdecimal' => value.to_s('F') }
    when Rational then { 'rational' => value.to_s }
    when Complex then { 'complex' => value.to_s }
    when Symbol then { 'symbol' => value.to_s }
    when String
      if value.encoding == Encoding::BINARY
        { 'binary' => Base64.strict_encode64(value) }
      elsif value.class != String
        { 'string' => value.to_s, 'class' => value.class.name }
      else
        value
      end
    when ActiveSupport::TimeWithZone
      { 'time_with_zone' => value.iso8601(9), 'zone' => value.time_zone.name }
    when DateTime then { 'datetime' => value.iso8601(9) }
    when Date then { 'date' => value.iso8601 }
    when Time then { 'time' => value.iso8601(9) }
    when Range
      { 'range' => [describe(value.begin), describe(value.end)], 'exclude_end' => value.exclude_end? }
    when Regexp then { 'regexp' => value.source, 'flags' => regexp_flags(value) }
    when Set then { 'set' => value.to_a.map { |v| describe(v) } }
    when ActiveSupport::HashWithIndifferentAccess
      { 'hash_with_indifferent_access' => pairs(value) }
    when Hash
      out = { 'hash' => pairs(value) }
      out['class'] = value.class.name if value.class != Hash
      out['ruby2_keywords'] = true if Hash.ruby2_keywords_hash?(value)
      out
    when Array
      items = value.map { |v| describe(v) }
      value.class == Array ? items : { 'array' => items, 'class' => value.class.name }
    when ActiveRecord::Base
      { 'record' => value.class.name, 'id' => describe(value.id) }
    when Class then { 'class' => value.name }
    when Module then { 'module' => value.name }
    when Struct
      { 'struct' => value.class.name, 'members' => value.each_pair.to_h { |k, v| [k.to_s, describe(v)] } }
    when Encoding then { 'encoding' => value.name }
    when Exception then { 'exception' => value.class.name, 'message' => value.message }
    else
      {
        'object' => value.class.name,
        'ivars' => value.instance_variables.to_h { |iv| [iv.to_s.delete_prefix('@'), describe(value.instance_variable_get(iv))] },
      }
    end
  end

  # Delayed::Job row columns a test may want to check.
  def row(job)
    {
      'queue' => job.queue,
      'priority' => job.priority,
      'attempts' => job.attempts,
      'run_at' => job.run_at&.utc&.iso8601(6),
      'created_at' => job.created_at&.utc&.iso8601(6),
    }
  end

  # Lets job code see which Delayed::Job row it is running (for DjLab.record).
  class CurrentJobPlugin < Delayed::Plugin
    callbacks do |lifecycle|
      lifecycle.around(:invoke_job) do |job, *args, &block|
        previous = Thread.current[:dj_lab_job]
        Thread.current[:dj_lab_job] = job
        begin
          block.call(job, *args)
        ensure
          Thread.current[:dj_lab_job] = previous
        end
      end
    end
  end
end

# --- configuration --------------------------------------------------------------------------

DjLab.default_timezone = (ENV['DJ_TIMEZONE'] || 'utc').downcase.to_sym
Time.zone_default = Time.find_zone!(ENV['DJ_TIME_ZONE'] || 'UTC')
Time.zone = Time.zone_default
ActiveRecord::Base.logger = ENV['DJ_SQL_LOG'] == '1' ? Logger.new($stderr) : nil

Delayed::Worker.logger = Logger.new($stdout)
Delayed::Worker.logger.level = Logger.const_get((ENV['DJ_LOG_LEVEL'] || 'INFO').upcase)
Delayed::Worker.plugins << DjLab::CurrentJobPlugin unless Delayed::Worker.plugins.include?(DjLab::CurrentJobPlugin)

if DjLab.deterministic?
  require 'active_support/testing/time_helpers'
  DjLab.extend(ActiveSupport::Testing::TimeHelpers)
  DjLab.travel_to(DjLab::FIXED_NOW)
  $dj_lab_uuid = 0
  SecureRandom.define_singleton_method(:uuid) do
    $dj_lab_uuid += 1
    format('00000000-0000-4000-8000-%012d', $dj_lab_uuid)
  end
end

DjLab.connect(create: $dj_lab_create_database == true)

if DjLab::HAVE_ACTIVEJOB
  GlobalID.app = 'djlab'
  ActiveJob::Base.queue_adapter = :delayed_job
  ActiveJob::Base.logger = Logger.new($stderr, level: Logger::WARN)
end

# --- app classes used by jobs ---------------------------------------------------------------

class ApplicationRecord < ActiveRecord::Base
  self.abstract_class = true
  include GlobalID::Identification if defined?(GlobalID::Identification)
end

class User < ApplicationRecord
  def self.cleanup(days)
    DjLab.record('User.cleanup', args: [DjLab.describe(days)])
  end

  # Options arrive as a trailing positional Hash (DJ 4.1.x does not keep keywords).
  def activate!(device, options = {})
    DjLab.record('User#activate!', receiver: DjLab.describe(self), args: [device, options].map { |v| DjLab.describe(v) })
  end

  def send_digest(kind)
    DjLab.record('User#send_digest', receiver: DjLab.describe(self), args: [DjLab.describe(kind)])
  end
  handle_asynchronously :send_digest, queue: 'digests', priority: 3
end

module Maintenance
  def self.vacuum(table, options = {})
    DjLab.record('Maintenance.vacuum', args: [table, options].map { |v| DjLab.describe(v) })
  end

  # Required keywords: a DJ 4.1.x job calling this fails under Ruby 3 (the keywords are
  # stored and passed as a positional Hash).
  def self.reindex(name:)
    DjLab.record('Maintenance.reindex', args: [], kwargs: DjLab.describe({ name: name }))
  end
end

class Greeter
  def initialize(greeting)
    @greeting = greeting
    @count = 0
  end

  def greet(name)
    DjLab.record('Greeter#greet', receiver: DjLab.describe(self), args: [DjLab.describe(name)])
  end
end

NewsletterJob = Struct.new(:text, :emails) do
  def perform
    DjLab.record('NewsletterJob#perform', received: DjLab.describe(self))
  end
end

module Reports
  Nightly = Struct.new(:date, :format) do
    def perform
      DjLab.record('Reports::Nightly#perform', received: DjLab.describe(self))
    end
  end
end

KeywordJob = Struct.new(:account_id, :mode, keyword_init: true) do
  def perform
    DjLab.record('KeywordJob#perform', received: DjLab.describe(self))
  end
end

class PlainJob
  def initialize(a:, b:, sym:, h:)
    @a = a
    @b = b
    @sym = sym
    @h = h
  end

  def perform
    DjLab.record('PlainJob#perform', received: DjLab.describe(self))
  end
end

ValuesJob = Struct.new(:values) do
  def perform
    DjLab.record('ValuesJob#perform', received: DjLab.describe(self))
  end
end

CounterJob = Struct.new(:n) do
  def perform
    DjLab.record('CounterJob#perform', n: n)
  end
end

# Records every payload hook delayed_job calls (5.1); fails in perform when `fail` is true.
HookJob = Struct.new(:label, :fail) do
  # Runs in the enqueueing process before the INSERT (job.id is still nil).
  def enqueue(job)
    DjLab.record('HookJob#enqueue', label: label, hook_job_id: job.id) if ENV['DJ_RECORD']
  end

  def before(job)
    DjLab.record('HookJob#before', label: label, hook_job_id: job.id)
  end

  def perform
    DjLab.record('HookJob#perform', label: label)
    raise ArgumentError, 'hook boom' if fail
  end

  def success(job)
    DjLab.record('HookJob#success', label: label, hook_job_id: job.id)
  end

  def error(job, exception)
    DjLab.record('HookJob#error', label: label, hook_job_id: job.id,
                                  exception: DjLab.describe(exception))
  end

  def after(job)
    DjLab.record('HookJob#after', label: label, hook_job_id: job.id)
  end

  def failure(job)
    DjLab.record('HookJob#failure', label: label, hook_job_id: job.id)
  end
end

# Always fails.
FailJob = Struct.new(:note) do
  def perform
    DjLab.record('FailJob#perform', note: note)
    raise ArgumentError, 'boom'
  end
end

# Sleeps (for max_run_time / concurrency tests).
SleepJob = Struct.new(:seconds) do
  def perform
    DjLab.record('SleepJob#perform', seconds: seconds)
    sleep(seconds.to_f)
  end
end

Money = Struct.new(:cents, :currency)

if DjLab::HAVE_ACTIVEJOB
  # An app-defined ActiveJob serializer (apps register these in config.active_job.custom_serializers).
  class MoneySerializer < ActiveJob::Serializers::ObjectSerializer
    def serialize?(argument)
      argument.is_a?(Money)
    end

    def serialize(money)
      super('cents' => money.cents, 'currency' => money.currency)
    end

    def deserialize(hash)
      Money.new(hash['cents'], hash['currency'])
    end
  end
  ActiveJob::Serializers.add_serializers(MoneySerializer)

  class ApplicationJob < ActiveJob::Base
  end

  class ReportJob < ApplicationJob
    queue_as :reports

    def perform(*args, **kwargs)
      DjLab.record('ReportJob#perform', job_class: self.class.name, aj_job_id: job_id,
                                        provider_job_id: provider_job_id,
                                        args: args.map { |a| DjLab.describe(a) },
                                        kwargs: DjLab.describe(kwargs))
    end
  end

  class FailingReportJob < ApplicationJob
    queue_as :reports

    def perform(note)
      DjLab.record('FailingReportJob#perform', aj_job_id: job_id, note: note)
      raise ArgumentError, 'aj boom'
    end
  end
end

if DjLab::HAVE_ACTIONMAILER
  ActionMailer::Base.delivery_method = :test
  # What `load_defaults 6.0`+ apps use; ActionMailer::DeliveryJob is the older default.
  ActionMailer::Base.delivery_job = ActionMailer::MailDeliveryJob
  ActionMailer::Base.logger = Logger.new($stderr, level: Logger::WARN)

  class UserMailer < ActionMailer::Base
    default from: 'noreply@example.com'

    def welcome(user, note = nil)
      note ||= params && params[:note]
      mail(to: "#{user.name.downcase}@example.com", subject: "Welcome #{user.name}",
           body: "Hello #{user.name}#{note ? " (#{note})" : ''}")
    end
  end

  # Records each delivered mail (PerformableMailer and deliver_later both end here).
  class MailRecorder
    def self.delivered_email(message)
      DjLab.record('mail', to: message.to, subject: message.subject, body: message.body.to_s)
    end
  end
  ActionMailer::Base.register_observer(MailRecorder)
end
