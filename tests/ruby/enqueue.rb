# frozen_string_literal: true

# Enqueues delayed_job jobs the way Rails apps do, from named scenarios or shapes.
#
#   DJ_DATABASE=sqlite3:/tmp/dj.db ruby tests/ruby/enqueue.rb all_shapes
#   DJ_DATABASE=... ruby tests/ruby/enqueue.rb --queue q1 --priority 3 --count 50 bulk
#   ruby tests/ruby/enqueue.rb --list
#
# Prints one JSON line per enqueued job on stdout:
#   {"id": 1, "shape": "struct_newsletter", "scenario": "structs",
#    "row": {"queue": ..., "priority": ..., "attempts": 0, "run_at": ..., "created_at": ...},
#    "expected": {"payload": <payload as Ruby loads it back>, ...}}
# Values are described as in tests/ruby/README.md. Shapes that this Ruby/Rails stack cannot
# produce are reported on stderr as {"skipped": shape, "reason": ...}.

require 'optparse'
require_relative 'env'

module Enqueue
  module_function

  OPTIONS = { count: 100, sleep: 2.0 }

  def job_options(defaults = {})
    opts = defaults.dup
    opts[:queue] = OPTIONS[:queue] if OPTIONS.key?(:queue)
    opts[:priority] = OPTIONS[:priority] if OPTIONS.key?(:priority)
    opts[:run_at] = OPTIONS[:run_at] if OPTIONS.key?(:run_at)
    opts
  end

  def enqueue(payload, defaults = {})
    Delayed::Job.enqueue(payload, job_options(defaults))
  end

  def user(name = 'Ann')
    User.find_or_create_by!(name: name)
  end

  # The row as stored; the in-memory job when a running worker has already done it.
  def fresh(job)
    Delayed::Job.find_by(id: job.id) || job
  end

  # Payload as Ruby's loader (Psych.load_dj) gives it back from the stored handler.
  def expected_for(job)
    loaded = fresh(job).payload_object
    out = { 'payload' => DjLab.describe(loaded) }
    if defined?(ActiveJob::QueueAdapters::DelayedJobAdapter::JobWrapper) &&
       loaded.is_a?(ActiveJob::QueueAdapters::DelayedJobAdapter::JobWrapper)
      data = loaded.job_data
      out['job_class'] = data['job_class']
      out['queue_name'] = data['queue_name']
      out['priority'] = data['priority']
      out['arguments'] = DjLab.describe(ActiveJob::Arguments.deserialize(data['arguments']))
    end
    out
  end

  def emit(shape, job, scenario, enqueued: nil, enqueued_arguments: nil)
    expected = expected_for(job)
    before = enqueued && DjLab.describe(enqueued)
    # Only where Ruby's own round trip changes a value do we show what was enqueued.
    expected['enqueued'] = before if before && before != expected['payload']
    if enqueued_arguments
      args = DjLab.describe(enqueued_arguments)
      expected['enqueued_arguments'] = args if args != expected['arguments']
    end
    line = { 'id' => job.id, 'shape' => shape, 'scenario' => scenario,
             'payload_class' => fresh(job).payload_object.class.name,
             'row' => DjLab.row(fresh(job)), 'expected' => expected }
    $stdout.puts JSON.generate(line)
    $stdout.flush
  end

  def skipped(shape, reason)
    warn JSON.generate('skipped' => shape, 'reason' => reason)
  end

  # A job carrying every Ruby value that shows up inside handlers (doc section 6.7).
  def tricky_values
    shared = [1, 2]
    {
      'true_string' => 'true', 'yes_string' => 'yes', 'colon_string' => ':x', 'int_string' => '1',
      'float_string' => '1.5', 'null_string' => 'null', 'tilde_string' => '~', 'empty_string' => '',
      'date_string' => '2024-01-02', 'comma_int_string' => '1,000', 'underscore_int_string' => '1_000',
      'multiline' => "line1\nline2\n", 'padded' => ' padded ', 'unicode' => "h\u00e9llo \u2713",
      'comment_string' => '# not a comment',
      :sym => :plain, :sym_with_space => :"with space", :sym_digit => :"1", :sym_colon => :":x",
      'binary' => "\xFF\x00bin".b, 'binary_ascii_only' => 'abc'.b,
      'int' => 42, 'negative' => -7, 'bignum' => 2**70, 'float' => 2.5, 'float_exp' => 1.0e20,
      'infinity' => Float::INFINITY, 'nan' => Float::NAN, 'nil' => nil, 'true' => true, 'false' => false,
      'bigdecimal' => BigDecimal('3.14'), 'rational' => Rational(1, 3), 'complex' => Complex(1, 2),
      'range' => (1..3), 'range_exclusive' => (1...3), 'range_string' => ('a'..'c'),
      'regexp' => /ab+c/i, 'regexp_mx' => /x y # comment/mx,
      'set' => Set[1, 2],
      'time' => Time.utc(2024, 1, 2, 3, 4, 5, 6),
      'time_offset' => Time.new(2024, 1, 2, 3, 4, 5, '+09:00'),
      'time_with_zone' => Time.utc(2024, 1, 2, 3, 4, 5).in_time_zone('Asia/Tokyo'),
      'date' => Date.new(2024, 1, 2),
      'datetime' => DateTime.new(2024, 1, 2, 3, 4, 5),
      'duration' => 1.hour,
      'hash_with_indifferent_access' => { a: 1 }.with_indifferent_access,
      'mixed_keys' => { 1 => 'one', :k => 'v', 'k' => 's', nil => 'nil' },
      'nested' => [1, [2, [3]]],
      'class' => User, 'module' => Maintenance,
      'struct' => Money.new(100, 'EUR'),
      'aliased_a' => shared, 'aliased_b' => shared,
    }
  end

  def aj_all_marker_args(user)
    args = [
      user, :sym, 'str', 1, 2.5, nil, true, false,
      BigDecimal('1.5'),
      Time.utc(2024, 1, 2, 3, 4, Rational('5.123456')),
      Time.new(2024, 1, 2, 3, 4, 5, '+09:00'),
      Date.new(2024, 1, 2),
      DateTime.new(2024, 1, 2, 3, 4, 5),
      Time.utc(2024, 1, 2, 3, 4, 5).in_time_zone('Asia/Tokyo'),
      1.hour,
      { 'a' => 1, :b => 2 },
      { x: 1 }.with_indifferent_access,
      [1, [2, [3]]],
      'true', ':x', '1', '', :"with space", "\xFF\x00".b, 2**70,
    ]
    if defined?(ActiveJob::Serializers::ModuleSerializer)
      args += [Maintenance, User]
    else
      skipped('aj_all_markers(Module)', 'this ActiveJob has no ModuleSerializer (Rails < 6.1)')
    end
    args
  end

  # Arguments ActiveJob 6.1 refuses; on a newer Rails they become their own shapes.
  AJ_MAYBE = {
    'aj_range' => -> { [1..3, 'a'...'c'] },
    'aj_set' => -> { [Set[1, 2]] },
    'aj_regexp' => -> { [/ab+c/i] },
  }.freeze

  def perform_aj(scenario, shape)
    args = yield
    job = ReportJob.perform_later(*args)
    emit(shape, Delayed::Job.find(job.provider_job_id), scenario, enqueued_arguments: args)
  rescue ActiveJob::SerializationError => e
    skipped(shape, "ActiveJob #{ActiveJob.version}: #{e.class}: #{e.message}")
  end

  SHAPES = {
    # --- payload objects (doc 6.1, 6.2) ---
    'struct_newsletter' => ['structs', lambda { |sc|
      payload = NewsletterJob.new('lorem ipsum', ['a@b.c', 'd@e.f'])
      emit('struct_newsletter', enqueue(payload), sc, enqueued: payload)
    }],
    'struct_namespaced' => ['structs', lambda { |sc|
      payload = Reports::Nightly.new(Date.new(2024, 1, 2), :pdf)
      emit('struct_namespaced', enqueue(payload), sc, enqueued: payload)
    }],
    'struct_keyword_init' => ['structs', lambda { |sc|
      payload = KeywordJob.new(account_id: 42, mode: 'full')
      emit('struct_keyword_init', enqueue(payload), sc, enqueued: payload)
    }],
    'object_plain' => ['objects', lambda { |sc|
      payload = PlainJob.new(a: 1, b: 'two', sym: :hello, h: { 'k' => 1, :sym => :v })
      emit('object_plain', enqueue(payload), sc, enqueued: payload)
    }],
    'values' => ['values', lambda { |sc|
      payload = ValuesJob.new(tricky_values)
      emit('values', enqueue(payload), sc, enqueued: payload)
    }],
    # --- Delayed::PerformableMethod (doc 6.3) ---
    'pm_class_receiver' => ['performable', lambda { |sc|
      emit('pm_class_receiver', User.delay(job_options).cleanup(30), sc)
    }],
    'pm_module_receiver' => ['performable', lambda { |sc|
      emit('pm_module_receiver', Maintenance.delay(job_options).vacuum('users', full: true), sc)
    }],
    'pm_object_receiver' => ['performable', lambda { |sc|
      emit('pm_object_receiver', Greeter.new('Hello').delay(job_options).greet('Bob'), sc)
    }],
    'pm_record_receiver' => ['performable', lambda { |sc|
      job = user.delay(job_options).activate!('iPhone', force: true, at: Time.utc(2024, 1, 2, 3, 4, 5))
      emit('pm_record_receiver', job, sc)
    }],
    'pm_handle_asynchronously' => ['performable', lambda { |sc|
      emit('pm_handle_asynchronously', user.send_digest('weekly'), sc)
    }],
    'pm_delay_options' => ['performable', lambda { |sc|
      job = Maintenance.delay(queue: 'maintenance', priority: 5, run_at: 1.hour.from_now).vacuum('jobs')
      emit('pm_delay_options', job, sc)
    }],
    # --- Delayed::PerformableMailer (doc 6.4) ---
    'pm_mailer' => ['mailer', lambda { |sc|
      next skipped('pm_mailer', 'ruby-actionmailer is not installed') unless DjLab::HAVE_ACTIONMAILER

      emit('pm_mailer', UserMailer.delay(job_options).welcome(user), sc)
    }],
    'pm_mailer_parameterized' => ['mailer', lambda { |sc|
      next skipped('pm_mailer_parameterized', 'ruby-actionmailer is not installed') unless DjLab::HAVE_ACTIONMAILER

      emit('pm_mailer_parameterized', UserMailer.with(note: 'params').delay(job_options).welcome(user), sc)
    }],
    # --- ActiveJob (doc 6.6) ---
    'aj_all_markers' => ['activejob', lambda { |sc|
      perform_aj(sc, 'aj_all_markers') { aj_all_marker_args(user) }
    }],
    'aj_kwargs' => ['activejob', lambda { |sc|
      job = ReportJob.perform_later(1, kw1: 'v', kw2: :s)
      emit('aj_kwargs', Delayed::Job.find(job.provider_job_id), sc, enqueued_arguments: job.arguments)
    }],
    'aj_scheduled' => ['activejob', lambda { |sc|
      job = ReportJob.set(wait: 3600, priority: 7, queue: 'late').perform_later('scheduled', 2)
      emit('aj_scheduled', Delayed::Job.find(job.provider_job_id), sc, enqueued_arguments: job.arguments)
    }],
    'aj_custom_serializer' => ['activejob', lambda { |sc|
      perform_aj(sc, 'aj_custom_serializer') { [Money.new(1999, 'EUR')] }
    }],
    'aj_mailer_deliver_later' => ['activejob', lambda { |sc|
      next skipped('aj_mailer_deliver_later', 'ruby-actionmailer is not installed') unless DjLab::HAVE_ACTIONMAILER

      job = UserMailer.welcome(user, 'later').deliver_later
      emit('aj_mailer_deliver_later', Delayed::Job.find(job.provider_job_id), sc,
           enqueued_arguments: job.arguments)
    }],
    'aj_mailer_deliver_later_legacy' => ['activejob', lambda do |sc|
      next skipped('aj_mailer_deliver_later_legacy', 'ruby-actionmailer is not installed') unless DjLab::HAVE_ACTIONMAILER

      previous = UserMailer.delivery_job
      UserMailer.delivery_job = ActionMailer::DeliveryJob # the default before Rails 6.0's load_defaults
      job = ActiveSupport::Deprecation.silence { UserMailer.welcome(user, 'legacy').deliver_later }
      emit('aj_mailer_deliver_later_legacy', Delayed::Job.find(job.provider_job_id), sc,
           enqueued_arguments: job.arguments)
    ensure
      UserMailer.delivery_job = previous if previous
    end],
    'aj_mailer_parameterized' => ['activejob', lambda { |sc|
      next skipped('aj_mailer_parameterized', 'ruby-actionmailer is not installed') unless DjLab::HAVE_ACTIONMAILER

      job = UserMailer.with(note: 'params').welcome(user).deliver_later
      emit('aj_mailer_parameterized', Delayed::Job.find(job.provider_job_id), sc,
           enqueued_arguments: job.arguments)
    }],
    'aj_range' => ['activejob', ->(sc) { perform_aj(sc, 'aj_range', &AJ_MAYBE['aj_range']) }],
    'aj_set' => ['activejob', ->(sc) { perform_aj(sc, 'aj_set', &AJ_MAYBE['aj_set']) }],
    'aj_regexp' => ['activejob', ->(sc) { perform_aj(sc, 'aj_regexp', &AJ_MAYBE['aj_regexp']) }],
    # --- jobs for worker tests ---
    'hook_job' => ['hooks', lambda { |sc|
      payload = HookJob.new('ok', false)
      emit('hook_job', enqueue(payload), sc, enqueued: payload)
    }],
    'hook_job_failing' => ['hooks', lambda { |sc|
      payload = HookJob.new('fails', true)
      emit('hook_job_failing', enqueue(payload), sc, enqueued: payload)
    }],
    'fail_job' => ['fail', lambda { |sc|
      payload = FailJob.new('always fails')
      emit('fail_job', enqueue(payload), sc, enqueued: payload)
    }],
    'pm_required_keywords' => ['fail', lambda { |sc|
      emit('pm_required_keywords', Maintenance.delay(job_options).reindex(name: 'users'), sc)
    }],
    'aj_fail' => ['fail', lambda { |sc|
      job = FailingReportJob.perform_later('always fails')
      emit('aj_fail', Delayed::Job.find(job.provider_job_id), sc, enqueued_arguments: job.arguments)
    }],
  }.freeze

  # Not part of all_shapes: sized by --count / --sleep.
  EXTRA = {
    'bulk' => lambda { |sc|
      OPTIONS[:count].times do |i|
        payload = CounterJob.new(i)
        emit('bulk_counter', enqueue(payload), sc, enqueued: payload)
      end
    },
    'sleep' => lambda { |sc|
      payload = SleepJob.new(OPTIONS[:sleep])
      emit('sleep_job', enqueue(payload), sc, enqueued: payload)
    },
  }.freeze

  def scenarios
    groups = SHAPES.group_by { |_, (group, _)| group }.transform_values { |list| list.map(&:first) }
    groups.merge('all_shapes' => SHAPES.keys)
  end

  def run(names)
    names.each do |name|
      if EXTRA.key?(name)
        EXTRA[name].call(name)
      elsif scenarios.key?(name)
        scenarios[name].each { |shape| SHAPES[shape][1].call(name) }
      elsif SHAPES.key?(name)
        SHAPES[name][1].call(name)
      else
        abort "unknown scenario or shape #{name.inspect}; try --list"
      end
    end
  end
end

parser = OptionParser.new do |o|
  o.banner = 'usage: enqueue.rb [options] SCENARIO|SHAPE...'
  o.on('--queue NAME', 'queue for struct/object/delay jobs') { |v| Enqueue::OPTIONS[:queue] = v }
  o.on('--priority N', Integer, 'priority for struct/object/delay jobs') { |v| Enqueue::OPTIONS[:priority] = v }
  o.on('--run-at ISO8601', 'run_at for struct/object/delay jobs') { |v| Enqueue::OPTIONS[:run_at] = Time.iso8601(v) }
  o.on('--count N', Integer, 'jobs for the bulk scenario (default 100)') { |v| Enqueue::OPTIONS[:count] = v }
  o.on('--sleep SECONDS', Float, 'seconds for the sleep scenario (default 2)') { |v| Enqueue::OPTIONS[:sleep] = v }
  o.on('--list', 'print scenarios and shapes as JSON') do
    puts JSON.generate('scenarios' => Enqueue.scenarios, 'extra' => Enqueue::EXTRA.keys)
    exit
  end
end
names = parser.parse(ARGV)
abort parser.help if names.empty?
Enqueue.run(names)
